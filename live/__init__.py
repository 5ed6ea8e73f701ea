"""Paper (and, later, exchange) trading of a trained policy on bars as they close."""
