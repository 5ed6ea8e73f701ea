"""The kill switch: limits a paper (or live) session checks after every bar.

A breach flattens the book with the normal execution model, stops trading and records
why (live.session). The limits:

- ``max_drawdown``: equity below this fraction under the session's peak
- ``daily_loss``: equity below this fraction under the UTC day's opening equity
- ``stale_bars``: no closed bar for this many bar lengths (live feeds only)
- ``max_errors``: this many consecutive exchange errors
- ``max_psi``: feature drift, the population stability index of recent observed features
  against the training data's, for any feature; checked once ``psi_bars`` bars are in.
  The textbook reading (0.1 small, 0.25 large) assumes independent rows; minute features
  come in volatility regimes, so a few hundred bars of an ordinary regime can read 0.25+
  (tests/unit/live/test_live_session.py): use a day-long window and a limit near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PSI_BINS = 10


class KillSwitch(BaseModel):
    """Limits of a session (None: not checked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_drawdown: float | None = Field(0.2, gt=0, lt=1)
    daily_loss: float | None = Field(0.1, gt=0, lt=1)
    stale_bars: float | None = Field(3.0, gt=0)
    max_errors: int | None = Field(10, ge=1)
    max_psi: float | None = Field(None, gt=0)
    psi_bars: int = Field(1440, ge=10, description="Recent bars the drift test reads.")


@dataclass(frozen=True)
class Breach:
    rule: str
    value: float
    limit: float

    def message(self) -> str:
        if self.rule == "manual_flatten":
            return "an operator asked to flatten"
        return f"{self.rule} {self.value:.4g} breached the limit {self.limit:.4g}"


def account_breach(limits: KillSwitch, equity: float, peak: float, day_start: float
                   ) -> Breach | None:
    """Drawdown from the session's peak, then the day's loss."""
    if limits.max_drawdown is not None and equity <= peak * (1.0 - limits.max_drawdown):
        return Breach("max_drawdown", 1.0 - equity / peak, limits.max_drawdown)
    if limits.daily_loss is not None and equity <= day_start * (1.0 - limits.daily_loss):
        return Breach("daily_loss", 1.0 - equity / day_start, limits.daily_loss)
    return None


@dataclass(frozen=True)
class DriftReference:
    """Per-feature bin edges (deciles of the training data) and the training shares."""

    features: tuple[str, ...]
    edges: np.ndarray
    """(features, PSI_BINS - 1) inner edges."""
    expected: np.ndarray
    """(features, PSI_BINS) share of training rows per bin."""

    @classmethod
    def of(cls, feats: np.ndarray, features: tuple[str, ...]) -> DriftReference:
        """From training rows (bars, assets, features): assets pooled per feature."""
        rows = feats.reshape(-1, feats.shape[-1]).astype(np.float64)
        edges, expected = [], []
        for j in range(rows.shape[1]):
            x = rows[:, j][np.isfinite(rows[:, j])]
            inner = np.unique(np.quantile(x, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
            inner = np.pad(inner, (0, PSI_BINS - 1 - len(inner)), constant_values=np.inf)
            edges.append(inner)
            expected.append(_shares(x, inner))
        return cls(tuple(features), np.array(edges), np.array(expected))

    def psi(self, feats: np.ndarray) -> dict[str, float]:
        """PSI of recent rows (bars, assets, features) per feature."""
        rows = feats.reshape(-1, feats.shape[-1]).astype(np.float64)
        out = {}
        for j, name in enumerate(self.features):
            x = rows[:, j][np.isfinite(rows[:, j])]
            actual = _shares(x, self.edges[j])
            e, a = np.maximum(self.expected[j], 1e-4), np.maximum(actual, 1e-4)
            out[name] = float(np.sum((a - e) * np.log(a / e)))
        return out


def _shares(x: np.ndarray, inner: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(inner, x, side="right"), minlength=PSI_BINS)
    return counts[:PSI_BINS] / max(len(x), 1)


def drift_breach(limits: KillSwitch, psi: dict[str, float]) -> Breach | None:
    if limits.max_psi is None or not psi:
        return None
    name, value = max(psi.items(), key=lambda kv: kv[1])
    if value >= limits.max_psi:
        return Breach(f"feature_drift:{name}", value, limits.max_psi)
    return None
