"""News and sentiment: collection (feeds, CryptoPanic), offline encoding (sentence
embeddings, sentiment) and causal alignment to market bars. Beside market/: envs and rl
read its aligned output, never the other way round."""
