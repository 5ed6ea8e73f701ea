"""Request and response models of the HTTP API (pydantic, published as the OpenAPI schema).

Every request model forbids unknown fields and bounds its sizes, so malformed input is
a 422 with the offending field named, never a 500 deeper in the model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from risk.report import RiskReport

_STRICT = ConfigDict(extra="forbid", frozen=True)

MAX_BARS = 20_000
"""Most bars accepted per asset in one request (about two weeks of minute bars)."""
MAX_HEADLINES = 2_000
"""Most headlines accepted in one request."""
SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A live session's id: its folder's name (no separators, no leading dot)."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Bar(BaseModel):
    """One OHLCV bar of a perpetual (timestamp: the bar's open time in ms UTC, like ccxt)."""

    model_config = _STRICT
    timestamp: int = Field(ge=0, description="Bar open time, ms since the epoch (ccxt).")
    open: FiniteFloat = Field(gt=0)
    high: FiniteFloat = Field(gt=0)
    low: FiniteFloat = Field(gt=0)
    close: FiniteFloat = Field(gt=0)
    volume: FiniteFloat = Field(ge=0)
    mark: FiniteFloat | None = Field(None, gt=0, description="Mark price close (default close).")
    funding_rate: FiniteFloat | None = Field(
        None, ge=-0.05, le=0.05, description="Funding rate paid at this bar, if any."
    )


class Headline(BaseModel):
    """A news item the policy may read (models trained with env_config.news): visible
    from the first bar closing strictly after ``first_seen``, as in training."""

    model_config = _STRICT
    title: str = Field(min_length=1, max_length=1_000)
    summary: str = Field("", max_length=10_000)
    first_seen: AwareDatetime = Field(
        description="When the news was first seen (ISO 8601 with a timezone); never its "
        "claimed publication time when that is earlier.")
    assets: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=50,
        description="Assets it is about ('BTC' or a symbol); none: market-wide news.")


class PortfolioState(BaseModel):
    """The account the signal is for (default: flat, 1M USDC, no history)."""

    model_config = _STRICT
    positions: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Signed position notional (USDC) per asset."
    )
    equity: FiniteFloat = Field(1_000_000.0, gt=0, description="Account equity (USDC).")


class Observation(BaseModel):
    """A ready observation, exactly as the env builds it (shapes in GET /v1/models)."""

    model_config = _STRICT
    market: list[list[list[FiniteFloat]]] = Field(description="(window, assets, features)")
    risk: list[list[FiniteFloat]] = Field(description="(risk_window, risk features)")
    portfolio: list[list[FiniteFloat]] = Field(description="(assets, portfolio features)")
    text: list[list[FiniteFloat]] | None = Field(
        None, description="(slots, width): ready headline embeddings, for models that read "
        "news text (news.align.AlignedNews.text)")


class SignalRequest(BaseModel):
    """Recent bars per asset (the service computes the features), or a ready observation."""

    model_config = _STRICT
    bars: dict[str, Annotated[list[Bar], Field(max_length=MAX_BARS)]] | None = Field(
        None, description="Bars per asset, oldest first, for every asset of the model."
    )
    observation: Observation | None = None
    news: Annotated[list[Headline], Field(max_length=MAX_HEADLINES)] | None = Field(
        None, description="Recent headlines, with bars, for models trained with news: "
        "aligned to the bars as in training (none sent: no news).")
    portfolio: PortfolioState | None = None
    account: dict[str, Any] | None = Field(
        None, description="The full account at the last bar, as `quantum live` keeps it "
        "(session.json's account: envs.account.Account); with bars only.",
    )
    account_id: str | None = Field(
        None, pattern=SESSION_ID, description="A live session of this service whose account "
        "to use (its `quantum live` session folder under the service's live_dir).",
    )
    model: str | None = Field(None, description="Model id (default: the served one).")


class RiskRequest(BaseModel):
    """Recent bars per asset and the book to assess: an account, a live session's account,
    a portfolio of notionals, or none (a flat book)."""

    model_config = _STRICT
    bars: dict[str, Annotated[list[Bar], Field(max_length=MAX_BARS)]] = Field(
        description="Bars per asset, oldest first, for every asset of the model: the "
        "history VaR, stress betas and the regime are computed from (a day or more).",
    )
    portfolio: PortfolioState | None = None
    account: dict[str, Any] | None = Field(
        None, description="The full account at the last bar (envs.account.Account).")
    account_id: str | None = Field(
        None, pattern=SESSION_ID, description="A live session of this service whose account "
        "to assess.")
    model: str | None = Field(None, description="Model id (default: the served one): its "
                              "run's limits and margin tiers apply.")


class RiskResponse(BaseModel):
    """The risk engine's report on the book at the last bar, with the model it was judged by
    (its run's limits and margin tiers)."""

    model_id: str
    data_timestamp: str = Field(description="Last bar used (UTC ISO).")
    report: RiskReport = Field(description="risk.report.RiskReport: exposure, margin, VaR/ES, "
                               "stress tests (each asset on its own tiers), alerts, regime, "
                               "liquidity, counterparty, notes.")


class HeadProbabilities(BaseModel):
    trade: dict[str, float] = Field(description="P(short), P(flat), P(long).")
    style: dict[str, float] = Field(description="Probability of each execution style.")


class ShieldAction(BaseModel):
    scale: float = Field(description="|shielded target| / |asked target| (1: untouched).")
    rules: list[str] = Field(description="The shield's rules that cut it, in order.")


class AssetSignal(BaseModel):
    asset: str
    decision: Literal["short", "flat", "long"]
    size: float = Field(description="Fraction of the per-asset exposure budget, in [0, 1].")
    target_exposure: float = Field(
        description="The policy's signed target notional / equity, before the env's caps "
        "and risk shield.")
    target_notional: float | None = Field(
        None, description="Signed target notional (USDC) the env would trade toward from the "
        "request's account: leverage, concentration and position caps, the risk shield, the "
        "daily-loss rule. Bars requests only (a ready observation holds no market arrays).")
    shield: ShieldAction | None = Field(
        None, description="What the risk shield did to this target (null when the model "
        "runs without the shield, or for a ready observation).")
    stop_loss_atr: float
    take_profit_atr: float
    execution_style: str
    execution_horizon_bars: int
    probabilities: HeadProbabilities
    attention: dict[str, float] = Field(
        default_factory=dict, description="Cross-asset attention of this asset's decision."
    )


class SignalResponse(BaseModel):
    model_id: str
    data_timestamp: str | None = Field(description="Last bar used (UTC ISO), if bars were sent.")
    value: float = Field(description="The critic's value estimate of the state.")
    signals: list[AssetSignal]


class BacktestRequest(BaseModel):
    model_config = _STRICT
    model: str | None = Field(None, description="Model id (default: the served one).")
    data: str | None = Field(None, max_length=256, description="A market store under the "
                             "service's data root, by its relative name (`quantum serve "
                             "--data-root`).")
    synthetic_seed: int | None = Field(None, ge=0, description="Or a fresh synthetic market.")
    synthetic_days: float | None = Field(None, gt=2, le=400)
    start: str | None = None
    end: str | None = None
    last_days: float | None = Field(None, gt=0, le=400)
    baselines: list[Literal["flat", "buy_and_hold", "momentum"]] = Field(
        default_factory=lambda: ["flat", "buy_and_hold"]
    )
    allow_in_sample: bool = Field(
        False,
        description="Run a span that overlaps the model's training or validation data "
        "(refused otherwise; the report then marks every metric in-sample). Without a "
        "span, the model's untouched test part is used.",
    )


class LiveStartRequest(BaseModel):
    """A paper session for the served model, run by the cluster (serving.deployments.LiveHost):
    a replay of stored bars, or live bars from the exchange the service is configured with."""

    model_config = _STRICT
    session_id: str = Field(pattern=SESSION_ID, description="Its folder under live_dir.")
    replay: bool = Field(True, description="Replay the model's market (its untouched test "
                         "part unless start/end say otherwise); false: live bars.")
    start: str | None = None
    end: str | None = None
    last_days: float | None = Field(None, gt=0, le=400)
    initial_capital: float | None = Field(None, gt=0)
    max_drawdown: float = Field(0.2, gt=0, lt=1)
    daily_loss: float = Field(0.1, gt=0, lt=1)
    max_psi: float | None = Field(None, gt=0)
    stale_bars: float = Field(3.0, gt=0)
    allow_in_sample: bool = False


class BacktestJob(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    model_id: str
    submitted: str
    started: str | None = None
    finished: str | None = None
    position: int | None = Field(None, description="Queued jobs ahead of this one.")
    metrics: dict[str, float | None] | None = None
    baselines: dict[str, dict[str, float | None]] | None = None
    report: str | None = Field(None, description="The report's name in the service's results.")
    sample: str | None = Field(None, description="In or out of sample, and why.")
    error: str | None = None


class ModelSwap(BaseModel):
    model_config = _STRICT
    model: str = Field(min_length=1, max_length=256, description="A trained run under the "
                       "service's model root, by its relative name.")


class KeyRequest(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64, description="Who or what the key is for.")
    scopes: list[Literal["read", "backtest", "trade", "admin"]] = Field(min_length=1)


class KeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created: str
    revoked: str | None = None


class KeyCreated(KeyInfo):
    secret: str = Field(description="The key itself: shown in this response only.")


class ModelInfo(BaseModel):
    id: str
    checkpoint: str = Field(description="The run's name (relative to the model root).")
    kind: str
    assets: list[str]
    observation: dict[str, list[int]]
    min_bars: int = Field(description="Fewest bars per asset a bars request needs.")
    shield: dict = Field(description="The run's risk shield settings (envs.config."
                         "ShieldConfig); enabled false: the shield is off.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a machine-readable code, a message and the offending fields."""

    code: str
    message: str
    details: list[dict] = Field(default_factory=list)


MAX_CHAT_CHARS = 2_000
"""Longest chat message accepted (the default model's whole context is 512 tokens)."""


class ChatRequest(BaseModel):
    """One message to the trading chatbot, optionally continuing a conversation."""

    model_config = _STRICT
    message: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)
    conversation_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Continue this conversation (the server keeps its recent turns); "
        "omit to start one.",
    )
    stream: bool = Field(False, description="Answer as server-sent events (text pieces).")


class ChatFact(BaseModel):
    key: str
    value: float | str
    text: str
    unit: str
    source: str
    timestamp: str


class ChatResponse(BaseModel):
    """The answer and what it rests on: every number and direction in ``text`` is one of
    ``facts_used`` (or the answer is the templated fallback, ``used_fallback``)."""

    conversation_id: str
    text: str
    intent: str
    assets: list[str]
    grounded: bool
    used_fallback: bool
    facts_used: list[ChatFact]
    problems: list[str] = Field(default_factory=list)
    history_turns: int = Field(description="Earlier turns of this conversation it saw.")
    model: str = Field(description="The chatbot model's folder name.")
    signal_model: str | None = Field(None, description="The policy whose signal it used.")
