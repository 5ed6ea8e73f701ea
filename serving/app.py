"""The Serve application: a FastAPI ingress that holds the policy (batched signals, see
serving.deployments for why it is not a separate hop) and reaches the backtest runner
deployment through a DeploymentHandle.

    app = build_app({"model_path": "runs/first"})   # also `serve run serving.app:build_app`

Routes, with the key scope each needs (serving.guard.ROUTES; audited: a line in the
audit log for every request, served or refused):

- ``GET  /healthz``, ``GET /readyz``        none: process up, policy answers
- ``GET  /v1/models``             read      the served model, assets, observation spec
- ``PUT  /v1/models``             admin     swap to a run under the model root (audited)
- ``POST /v1/signals``            read      bars or an observation in, signals out (batched);
                                            with bars, the account: a full one
                                            (``account``), a live session's
                                            (``account_id``) or positions (``portfolio``)
- ``POST /v1/chat``               read      the trading chatbot (with ``chat_model_path``)
- ``GET  /v1/live/{id}``          read      a `quantum live` session's status
- ``POST /v1/live``               trade     start a paper session as a Ray task (audited)
- ``POST /v1/live/{id}/stop``     trade     stop it after its current bar (audited)
- ``POST /v1/live/{id}/flatten``  trade     trip its kill switch: flatten, stop (audited)
- ``POST /v1/backtests``          backtest  queue a backtest job (audited; per-key quota)
- ``GET  /v1/backtests/{id}``     backtest  a job of this key: status, metrics, report name
- ``GET  /v1/admin/keys``         admin     the key file's keys (never secrets)
- ``POST /v1/admin/keys``         admin     a new key, its secret shown once (audited)
- ``DELETE /v1/admin/keys/{id}``  admin     revoke a key (audited)

Requests name stores and models by relative names under the service's roots
(``data_root``, ``model_root``); no answer echoes a server path.

Errors are JSON bodies ``{code, message, details}`` with a 4xx status; an unexpected
failure is a 500 with code ``internal`` and no traceback or input echoed back.
"""

# no `from __future__ import annotations`: Serve rebuilds the ingress class's routes in the
# replica, where FastAPI must resolve the request and response models from real annotations
import asyncio
import logging
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.auth import API_KEY_HEADER, LEGACY_SCOPES, KeyFile, KeyFileError, Principal
from serving.deployments import PolicyServer
from serving.guard import AuditLog, Guard, KeySource, RateLimiter, confine, error_body
from serving.schemas import (
    SESSION_ID,
    BacktestJob,
    BacktestRequest,
    ChatRequest,
    ChatResponse,
    ErrorBody,
    KeyCreated,
    KeyInfo,
    KeyRequest,
    LiveStartRequest,
    ModelInfo,
    ModelSwap,
    RiskRequest,
    RiskResponse,
    SignalRequest,
    SignalResponse,
)

log = logging.getLogger(__name__)

api = FastAPI(
    title="Quantum",
    version="1",
    description="Trading signals, backtests and paper trading from trained perpetual-futures "
    "policies. Every /v1 route needs an X-API-Key whose scopes include the route's.",
    responses={status: {"model": ErrorBody} for status in (400, 401, 403, 413, 422, 429)},
)
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []
        self.headers = headers


@api.exception_handler(ApiError)
async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    return error_body(err.status, err.code, err.message, err.details, err.headers)


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    details = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")}
               for e in err.errors()[:20]]
    return error_body(422, "invalid_request", "the request does not match the schema", details)


@api.exception_handler(Exception)
async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_body(500, "internal", "internal error; see the service log")


api.add_middleware(Guard)


def _principal(request: Request, _key: str | None = Depends(_key_header)) -> Principal:
    """The caller, as the Guard authenticated it (the header dependency documents the key
    in the OpenAPI schema)."""
    return request.state.principal


Caller = Annotated[Principal, Depends(_principal)]


def _input_error(err: Exception) -> ApiError | Exception:
    """The deployment's InputError (bad bars or observation) as a 400; else unchanged."""
    from serving.observation import InputError

    cause = err
    while cause is not None and not isinstance(cause, InputError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(cause, InputError):
        return ApiError(400, cause.code, cause.message, cause.details)
    return err


def _limited(wait: float, what: str) -> ApiError:
    return ApiError(429, "rate_limited", f"too many {what}; retry after Retry-After seconds",
                    [{"retry_after_s": round(wait, 1)}], {"Retry-After": str(int(wait) + 1)})


def _confined(root: str | None, name: str, what: str) -> Path:
    """A request's relative name under one of the service's roots, as an ApiError that
    repeats only the name the client sent."""
    try:
        return confine(Path(root) if root else None, name, what)
    except PermissionError as err:
        raise ApiError(404, f"{what}s_disabled", str(err)) from err
    except FileNotFoundError as err:
        raise ApiError(404, f"unknown_{what}", str(err)) from err
    except ValueError as err:
        raise ApiError(422, "invalid_request", str(err)) from err


async def _events(stream) -> Any:
    import json

    async for event in stream:
        yield f"data: {json.dumps(event)}\n\n"


@dataclass(frozen=True)
class GatewaySettings:
    """How the ingress authenticates, confines, limits and records requests (from
    build_app's arguments, i.e. the Serve config)."""

    key_file: str | None = None
    key_digests: tuple[str, ...] = ()
    legacy_scopes: tuple[str, ...] = LEGACY_SCOPES
    audit_log: str | None = None
    data_root: str | None = None
    model_root: str | None = None
    state_dir: str | None = None
    live_dir: str | None = None
    max_batch_size: int = 32
    batch_wait_s: float = 0.0005
    chat_per_minute: float = 30.0
    chat_burst: int = 5
    signals_per_minute: float = 6000.0
    signals_burst: int = 200


# Serve serialises the class when it is decorated: everything its methods use is above.
@serve.deployment(
    max_ongoing_requests=256,
    ray_actor_options={"num_cpus": 0},
    logging_config={"enable_access_log": False},
)
@serve.ingress(api)
class Gateway(PolicyServer):
    """The HTTP ingress: authentication and scopes (serving.guard), validation, batched
    signals from the policy it holds (PolicyServer; ``user_config = {"model_path": ...}``),
    backtests through the BacktestRunner's handle, paper sessions through LiveHost's."""

    def __init__(self, backtests: DeploymentHandle, settings: GatewaySettings,
                 chat: DeploymentHandle | None = None,
                 live_host: DeploymentHandle | None = None) -> None:
        swap = Path(settings.state_dir) / "served_model.json" if settings.state_dir else None
        self._setup_policy(settings.max_batch_size, settings.batch_wait_s, swap)
        self.settings = settings
        self.live_dir = Path(settings.live_dir) if settings.live_dir else None
        self.live_host = live_host
        self.backtests = backtests
        self.chat = chat
        self.chat_limit = RateLimiter(settings.chat_per_minute, settings.chat_burst)
        self.signal_limit = RateLimiter(settings.signals_per_minute, settings.signals_burst)
        api.state.keys = KeySource(settings.key_file, settings.key_digests,
                                   settings.legacy_scopes)
        self.key_file = api.state.keys.file  # the same file the guard re-reads
        api.state.audit = AuditLog(settings.audit_log) if settings.audit_log else None

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"model": ErrorBody}})
    async def readyz(self) -> Any:
        if self.policy is None:
            return error_body(503, "not_ready", "no policy is loaded yet")
        return {"status": "ready", "model": self.policy.model_id}

    @api.get("/v1/models", response_model=list[ModelInfo])
    async def models(self, who: Caller) -> list[dict]:
        self._check_model(None)
        return [self._public_info()]

    @api.put("/v1/models", response_model=ModelInfo)
    async def swap_model(self, body: ModelSwap, who: Caller) -> dict:
        """Serve another trained run from under the model root (every replica follows
        within a second; the choice survives a replica restart)."""
        if self.swap_file is None:
            raise ApiError(404, "models_disabled", "this service swaps no models by request "
                           "(no state_dir)")
        path = _confined(self.settings.model_root, body.model, "model")
        try:
            await asyncio.to_thread(self.swap, str(path), body.model)
        except (OSError, ValueError) as err:
            raise ApiError(422, "unusable_model", f"model {body.model!r} cannot be served: "
                           f"{type(err).__name__}") from err
        return self._public_info()

    def _public_info(self) -> dict:
        """The model's description, naming its folder as the model root does (or by its
        own name), never by its server path."""
        info = self.info()
        source = Path(self.source)
        root = Path(self.settings.model_root).resolve() if self.settings.model_root else None
        resolved = source.resolve()
        inside = root is not None and resolved.is_relative_to(root)
        info["checkpoint"] = str(resolved.relative_to(root)) if inside else source.name
        return info

    @api.post("/v1/signals", response_model=SignalResponse)
    async def signals(self, body: SignalRequest, who: Caller) -> dict:
        wait = self.signal_limit.wait_s(who.key_id)
        if wait > 0:
            raise _limited(wait, "signal requests")
        if (body.bars is None) == (body.observation is None):
            raise ApiError(422, "invalid_request", "send either bars or an observation")
        if body.news is not None and body.bars is None:
            raise ApiError(422, "invalid_request", "news goes with bars (a ready observation "
                           "carries its headlines in its text part)")
        body = self._held_account(body)
        try:
            return await self.signal(body)
        except Exception as err:
            raise _input_error(err) from err

    @api.post("/v1/risk", response_model=RiskResponse)
    async def risk_report(self, body: RiskRequest, who: Caller) -> dict:
        """The risk engine's report on a book at the last bar sent: VaR/ES, stress tests
        (margined with each asset's own tiers), limit alerts, regime; the served run's
        limits and tiers apply. Counted against the key's signal quota."""
        wait = self.signal_limit.wait_s(who.key_id)
        if wait > 0:
            raise _limited(wait, "risk requests")
        body = self._held_account(body)
        try:
            return await self.risk(body)
        except Exception as err:
            raise _input_error(err) from err

    def _held_account(self, body: Any) -> Any:
        """``body`` with at most one of portfolio/account/account_id, a session's account
        looked up by its id, and a model this service serves."""
        held = [k for k in ("portfolio", "account", "account_id") if getattr(body, k) is not None]
        if len(held) > 1:
            raise ApiError(422, "invalid_request", f"send one of {held}, not several")
        if held and body.bars is None:
            raise ApiError(422, "invalid_request", f"{held[0]} goes with bars (a ready "
                           "observation already holds the account)")
        if body.account_id is not None:
            account = self._live_state(body.account_id)["account"]
            body = body.model_copy(update={"account": account, "account_id": None})
        self._check_model(body.model)
        return body

    @api.get("/v1/live/{session_id}")
    async def live_status(self, session_id: str, who: Caller) -> dict:
        """A live session's status, as `quantum live status --json` shows it; for a session
        this service runs, ``task`` holds how its task ended (once it has)."""
        from live.session import status_of

        status = status_of(self._live_state(session_id))
        if self.live_host is not None:
            outcome = await self.live_host.outcome.remote(session_id)
            status["task"] = None if outcome is None else (
                {"error": outcome["error"]} if "error" in outcome else {"ended": True})
        return status

    @api.post("/v1/live", status_code=202)
    async def live_start(self, body: LiveStartRequest,
                         who: Caller) -> dict:
        """Start (or resume) a paper session of the served model, run by the cluster."""
        self._check_model(None)
        if self.live_host is None:
            raise ApiError(404, "live_disabled", "this service has no live_dir")
        started = await self.live_host.start.remote(str(self.policy.checkpoint),
                                                    body.model_dump())
        if started["status"] == "already_running":
            raise ApiError(409, "already_running", f"session {body.session_id!r} is running")
        return started

    @api.post("/v1/live/{session_id}/stop", status_code=202)
    async def live_stop(self, session_id: str, who: Caller) -> dict:
        """Ask a session to stop after its current bar (it keeps its book)."""
        from live.journal import Journal

        self._live_state(session_id)  # 404/422 as for status
        Journal(self.live_dir / session_id).request_stop()
        return {"id": session_id, "status": "stop_requested"}

    @api.post("/v1/live/{session_id}/flatten", status_code=202)
    async def live_flatten(self, session_id: str,
                           who: Caller) -> dict:
        """Trip the session's kill switch at its next bar: it flattens its book with the
        normal execution model and stops trading."""
        from live.journal import Journal

        self._live_state(session_id)
        Journal(self.live_dir / session_id).request_flatten()
        return {"id": session_id, "status": "flatten_requested"}

    def _live_state(self, session_id: str) -> dict:
        """The committed state of a session folder under live_dir; the id is a plain name
        (no path), and errors never show server paths."""
        from live.journal import JournalError, read_state

        if self.live_dir is None:
            raise ApiError(404, "live_disabled", "this service has no live_dir")
        if not re.fullmatch(SESSION_ID, session_id):
            raise ApiError(422, "invalid_request", "a session id is a plain folder name")
        try:
            state = read_state(self.live_dir / session_id)
        except JournalError as err:
            raise ApiError(503, "session_unreadable", f"session {session_id!r} has no "
                           "readable state") from err
        if state is None:
            raise ApiError(404, "unknown_session", f"no live session {session_id!r}")
        return state

    @api.post("/v1/backtests", response_model=BacktestJob, status_code=202)
    async def start_backtest(self, body: BacktestRequest,
                             who: Caller) -> dict:
        if body.data is not None and body.synthetic_seed is not None:
            raise ApiError(422, "invalid_request", "give data or synthetic_seed, not both")
        self._check_model(body.model)
        request = body.model_dump(exclude={"model", "data"})
        if body.data is not None:
            request["data_path"] = str(_confined(self.settings.data_root, body.data, "store"))
        job = await self.backtests.start.remote(
            str(self.policy.checkpoint), self.policy.model_id, request, who.key_id
        )
        if "refused" in job:
            raise ApiError(429, "quota_exceeded", job["refused"], [], {"Retry-After": "30"})
        return job

    @api.get("/v1/backtests/{job_id}", response_model=BacktestJob)
    async def backtest_status(self, job_id: str, who: Caller) -> dict:
        job = await self.backtests.status.remote(job_id, who.key_id)
        if job is None:
            raise ApiError(404, "unknown_job", f"no backtest job {job_id!r} of this key")
        return job

    @api.post("/v1/chat", response_model=ChatResponse,
              responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    async def chat_message(self, body: ChatRequest, who: Caller) -> Any:
        if self.chat is None:
            raise ApiError(404, "chat_disabled", "this service runs without the chatbot")
        wait = self.chat_limit.wait_s(who.key_id)
        if wait > 0:
            raise _limited(wait, "chat messages")
        if body.stream:
            stream = self.chat.options(stream=True).stream.remote(
                body.conversation_id, body.message
            )
            return StreamingResponse(_events(stream), media_type="text/event-stream")
        return await self.chat.reply.remote(body.conversation_id, body.message)

    @api.get("/v1/admin/keys", response_model=list[KeyInfo])
    async def list_keys(self, who: Caller) -> list[dict]:
        return [r.public() for r in self._keys().records().values()]

    @api.post("/v1/admin/keys", response_model=KeyCreated, status_code=201)
    async def add_key(self, body: KeyRequest, who: Caller) -> dict:
        """A new key; its secret is in this response only."""
        try:
            record, secret = self._keys().add(body.name, body.scopes)
        except KeyFileError as err:
            raise ApiError(422, "invalid_request", str(err)) from err
        return {**record.public(), "secret": secret}

    @api.delete("/v1/admin/keys/{key_id}", response_model=KeyInfo)
    async def revoke_key(self, key_id: str, who: Caller) -> dict:
        try:
            return self._keys().revoke(key_id).public()
        except KeyFileError as err:
            raise ApiError(404, "unknown_key", f"no key {key_id!r}") from err

    def _keys(self) -> KeyFile:
        if self.key_file is None:
            raise ApiError(404, "keys_disabled", "this service has no key file")
        return self.key_file

    async def live_info(self) -> dict:
        """The served policy's assets, bars needed and timeframe (for the chatbot)."""
        self._check_model(None)
        return {**self.info(), "timeframe": self.policy.timeframe}

    async def live_signal(self, bars: dict) -> dict:
        """The policy's signal on these bars (the chatbot's live signal, via a handle)."""
        self._check_model(None)
        return await self.signal({"bars": bars})

    def _check_model(self, model: str | None) -> None:
        """503 until a checkpoint is loaded (direct ingress can take requests before
        reconfigure has run), 404 for a model id other than the served one."""
        self.follow_swap()
        if self.policy is None:
            raise ApiError(503, "not_ready", "the policy is still loading; retry shortly")
        served = self.policy.model_id
        if model is not None and model != served:
            raise ApiError(404, "unknown_model", f"model {model!r} is not served",
                           [{"served": served}])


def settings_from(args: dict) -> GatewaySettings:
    """The Gateway's settings from build_app's arguments (unknown ones are ignored here:
    they belong to other deployments)."""
    names = {f.name for f in fields(GatewaySettings)}
    given = {k: v for k, v in args.items() if k in names and v is not None}
    for name in ("key_digests", "legacy_scopes"):
        if name in given:
            given[name] = tuple(given[name])
    return GatewaySettings(**given)


def build_app(args: dict) -> serve.Application:
    """The application (Serve's builder signature: ``serve run serving.app:build_app
    model_path=runs/first``).

    Keys: ``key_file`` (scoped keys, serving.auth) and/or plain keys from this process's
    environment (QUANTUM_API_KEYS, with QUANTUM_API_KEY_SCOPES) or ``key_digests``; the
    app refuses to start with none. Paths: ``data_root`` and ``model_root`` bound what
    requests may name; ``state_dir`` holds the job queue, the audit log (``audit_log``
    overrides) and the swapped-model choice. Quotas: ``signals_per_minute``/
    ``signals_burst`` and ``chat_per_minute``/``chat_burst`` per key,
    ``backtests_running_per_key``/``backtests_queued_per_key``.

    With ``chat_model_path`` (a chatbot model or LoRA adapter folder) the ChatServer
    deployment joins it behind ``POST /v1/chat``; ``data_path`` (the market store) keeps
    its facts live. Chat limits: ``chat_max_history`` turns per conversation,
    ``chat_max_conversations`` kept."""
    from serving.auth import legacy_digests, legacy_scopes
    from serving.deployments import LiveHost
    from serving.jobs import BacktestRunner

    args = dict(args)
    if "key_digests" not in args:
        args["key_digests"] = legacy_digests()
    args.setdefault("legacy_scopes", legacy_scopes())
    state_dir = args.get("state_dir")
    if state_dir and not args.get("audit_log"):
        args["audit_log"] = str(Path(state_dir) / "audit.jsonl")
    settings = settings_from(args)
    if not KeySource(settings.key_file, settings.key_digests).current():
        raise ValueError("no API keys: make one with `quantum keys add` (key_file) or set "
                         "QUANTUM_API_KEYS before starting the service")
    model_path = str(args["model_path"])
    results = str(args.get("results_dir", "results/serve"))
    backtests = BacktestRunner.bind(results, state_dir,
                                    int(args.get("backtests_running_per_key", 2)),
                                    int(args.get("backtests_queued_per_key", 8)))
    gateway = Gateway.options(
        num_replicas=int(args.get("replicas", 1)), user_config={"model_path": model_path}
    )
    chat = None
    if args.get("chat_model_path"):
        from serving.chat import ChatServer

        chat = ChatServer.bind(
            str(args["chat_model_path"]), args.get("chat_base_model"), args.get("data_path"),
            str(args.get("exchange", "synthetic")), str(args.get("app_name", "quantum")),
            int(args.get("chat_max_history", 5)), int(args.get("chat_max_conversations", 1000)),
            float(args.get("chat_refresh_s", 60.0)), str(args.get("chat_device", "cpu")),
        )
    live = LiveHost.bind(str(args["live_dir"]), args.get("live_market")) \
        if args.get("live_dir") else None
    return gateway.bind(backtests, settings, chat, live)
