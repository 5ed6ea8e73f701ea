"""The Serve application: a FastAPI ingress that holds the policy (batched signals, see
serving.deployments for why it is not a separate hop) and reaches the backtest runner
deployment through a DeploymentHandle.

    app = build_app({"model_path": "runs/first"})   # also `serve run serving.app:build_app`

Routes (every one but the health checks needs the ``X-API-Key`` header):

- ``POST /v1/signals``            bars or an observation in, per-asset signals out (batched);
                                  with bars, the account: a full one (``account``), a live
                                  session's (``account_id``) or positions (``portfolio``)
- ``GET  /v1/live/{session_id}``  a `quantum live` session's status (with ``live_dir``)
- ``POST /v1/live``               start a paper session of the served model as a Ray task;
  ``POST /v1/live/{id}/stop``      stop it after its current bar
- ``POST /v1/backtests``          start a backtest job (a Ray task), returns its id at once
- ``GET  /v1/backtests/{job_id}`` status, metrics and the report's path
- ``GET  /v1/models``             the loaded checkpoint, assets, observation spec
- ``POST /v1/chat``               the trading chatbot (serving.chat), JSON or server-sent
                                  events; only when the app is built with ``chat_model_path``
- ``GET  /healthz`` (process up), ``GET /readyz`` (the policy answers)

Errors are JSON bodies ``{code, message, details}`` with a 4xx status; an unexpected
failure is a 500 with code ``internal`` and no traceback or input echoed back.
"""

# no `from __future__ import annotations`: Serve rebuilds the ingress class's routes in the
# replica, where FastAPI must resolve the request and response models from real annotations
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.auth import API_KEY_HEADER, digest, key_matches
from serving.deployments import PolicyServer
from serving.schemas import (
    SESSION_ID,
    BacktestJob,
    BacktestRequest,
    ChatRequest,
    ChatResponse,
    ErrorBody,
    LiveStartRequest,
    ModelInfo,
    SignalRequest,
    SignalResponse,
)

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (a 20,000-bar, 3-asset request is about 6 MB)."""

api = FastAPI(
    title="Quantum",
    version="1",
    description="Trading signals and backtests from trained perpetual-futures policies.",
    responses={status: {"model": ErrorBody} for status in (400, 401, 413, 422, 429)},
)
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def _error(status: int, code: str, message: str, details: list | None = None) -> JSONResponse:
    body = ErrorBody(code=code, message=message, details=details or [])
    return JSONResponse(status_code=status, content=body.model_dump())


@api.exception_handler(ApiError)
async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    return _error(err.status, err.code, err.message, err.details)


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    details = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")}
               for e in err.errors()[:20]]
    return _error(422, "invalid_request", "the request does not match the schema", details)


@api.exception_handler(Exception)
async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return _error(500, "internal", "internal error; see the service log")


class _Guard:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a copy per
    request): every /v1 route needs a valid key, checked before the body is read, so an
    anonymous caller learns nothing about the schema; bodies over MAX_BODY_BYTES are
    refused from their Content-Length."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            refusal = None
            if scope["path"].startswith("/v1/"):
                digests = getattr(scope["app"].state, "key_digests", ())
                key = headers.get(API_KEY_HEADER.lower().encode(), b"").decode("latin-1")
                if not key_matches(key, digests):
                    refusal = _error(
                        401, "unauthorized", f"a valid {API_KEY_HEADER} header is required"
                    )
            length = headers.get(b"content-length")
            if (
                refusal is None
                and length is not None
                and (not length.isdigit() or int(length) > MAX_BODY_BYTES)
            ):
                limit = f"request bodies are limited to {MAX_BODY_BYTES} bytes"
                refusal = _error(413, "payload_too_large", limit)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


api.add_middleware(_Guard)


def _input_error(err: Exception) -> ApiError | Exception:
    """The deployment's InputError (bad bars or observation) as a 400; else unchanged."""
    from serving.observation import InputError

    cause = err
    while cause is not None and not isinstance(cause, InputError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(cause, InputError):
        return ApiError(400, cause.code, cause.message, cause.details)
    return err


class RateLimiter:
    """A token bucket per API key (its digest): ``per_minute`` requests on average, up to
    ``burst`` at once. Per replica: N Gateway replicas allow N times the rate."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self.buckets: dict[str, tuple[float, float]] = {}

    def wait_s(self, key: str) -> float:
        """0 when the request may go now (and takes a token), else seconds to wait."""
        import time

        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


async def _events(stream) -> Any:
    import json

    async for event in stream:
        yield f"data: {json.dumps(event)}\n\n"


# Serve serialises the class when it is decorated: everything its methods use is above.
@serve.deployment(
    max_ongoing_requests=256,
    ray_actor_options={"num_cpus": 0},
    logging_config={"enable_access_log": False},
)
@serve.ingress(api)
class Gateway(PolicyServer):
    """The HTTP ingress: authentication, validation, batched signals from the policy it
    holds (PolicyServer; ``user_config = {"model_path": ...}``), backtests through the
    BacktestRunner's handle."""

    def __init__(self, backtests: DeploymentHandle, key_digests: tuple[str, ...],
                 max_batch_size: int = 32, batch_wait_s: float = 0.0005,
                 chat: DeploymentHandle | None = None, chat_per_minute: float = 30.0,
                 chat_burst: int = 5, live_dir: str | None = None,
                 live_host: DeploymentHandle | None = None) -> None:
        self._setup_policy(max_batch_size, batch_wait_s)
        self.live_dir = Path(live_dir) if live_dir else None
        self.live_host = live_host
        self.backtests = backtests
        self.chat = chat
        self.chat_limit = RateLimiter(chat_per_minute, chat_burst)
        self.key_digests = tuple(key_digests)
        api.state.key_digests = self.key_digests

    def _auth(self, key: str | None) -> None:
        if not key_matches(key, self.key_digests):
            raise ApiError(401, "unauthorized", f"a valid {API_KEY_HEADER} header is required")

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"model": ErrorBody}})
    async def readyz(self) -> Any:
        if self.policy is None:
            return _error(503, "not_ready", "no policy is loaded yet")
        return {"status": "ready", "model": self.policy.model_id}

    @api.get("/v1/models", response_model=list[ModelInfo])
    async def models(self, key: str | None = Depends(_key_header)) -> list[dict]:
        self._auth(key)
        self._check_model(None)
        return [self.info()]

    @api.post("/v1/signals", response_model=SignalResponse)
    async def signals(self, body: SignalRequest, key: str | None = Depends(_key_header)) -> dict:
        self._auth(key)
        if (body.bars is None) == (body.observation is None):
            raise ApiError(422, "invalid_request", "send either bars or an observation")
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
        try:
            return await self.signal(body)
        except Exception as err:
            raise _input_error(err) from err

    @api.get("/v1/live/{session_id}")
    async def live_status(self, session_id: str, key: str | None = Depends(_key_header)) -> dict:
        """A live session's status, as `quantum live status --json` shows it; for a session
        this service runs, ``task`` holds how its task ended (once it has)."""
        from live.session import status_of

        self._auth(key)
        status = status_of(self._live_state(session_id))
        if self.live_host is not None:
            outcome = await self.live_host.outcome.remote(session_id)
            status["task"] = None if outcome is None else (
                {"error": outcome["error"]} if "error" in outcome else {"ended": True})
        return status

    @api.post("/v1/live", status_code=202)
    async def live_start(self, body: LiveStartRequest,
                         key: str | None = Depends(_key_header)) -> dict:
        """Start (or resume) a paper session of the served model, run by the cluster."""
        self._auth(key)
        self._check_model(None)
        if self.live_host is None:
            raise ApiError(404, "live_disabled", "this service has no live_dir")
        started = await self.live_host.start.remote(str(self.policy.checkpoint),
                                                    body.model_dump())
        if started["status"] == "already_running":
            raise ApiError(409, "already_running", f"session {body.session_id!r} is running")
        return started

    @api.post("/v1/live/{session_id}/stop", status_code=202)
    async def live_stop(self, session_id: str, key: str | None = Depends(_key_header)) -> dict:
        """Ask a session to stop after its current bar (it keeps its book)."""
        self._auth(key)
        self._live_state(session_id)  # 404/422 as for status
        if self.live_host is not None:
            await self.live_host.stop.remote(session_id)
        else:
            from live.journal import Journal

            Journal(self.live_dir / session_id).request_stop()
        return {"id": session_id, "status": "stop_requested"}

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
                             key: str | None = Depends(_key_header)) -> dict:
        self._auth(key)
        if body.data_path is not None and body.synthetic_seed is not None:
            raise ApiError(422, "invalid_request", "give data_path or synthetic_seed, not both")
        self._check_model(body.model)
        return await self.backtests.start.remote(
            str(self.policy.checkpoint), self.policy.model_id, body.model_dump(exclude={"model"})
        )

    @api.get("/v1/backtests/{job_id}", response_model=BacktestJob)
    async def backtest_status(self, job_id: str, key: str | None = Depends(_key_header)) -> dict:
        self._auth(key)
        job = await self.backtests.status.remote(job_id)
        if job is None:
            raise ApiError(404, "unknown_job", f"no backtest job {job_id!r}")
        return job

    @api.post("/v1/chat", response_model=ChatResponse,
              responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    async def chat_message(self, body: ChatRequest,
                           key: str | None = Depends(_key_header)) -> Any:
        self._auth(key)
        if self.chat is None:
            raise ApiError(404, "chat_disabled", "this service runs without the chatbot")
        wait = self.chat_limit.wait_s(digest(key or ""))
        if wait > 0:
            return JSONResponse(
                status_code=429, headers={"Retry-After": str(int(wait) + 1)},
                content={"code": "rate_limited", "details": [{"retry_after_s": round(wait, 1)}],
                         "message": "too many chat messages; retry after Retry-After seconds"},
            )
        if body.stream:
            stream = self.chat.options(stream=True).stream.remote(
                body.conversation_id, body.message
            )
            return StreamingResponse(_events(stream), media_type="text/event-stream")
        return await self.chat.reply.remote(body.conversation_id, body.message)

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
        if self.policy is None:
            raise ApiError(503, "not_ready", "the policy is still loading; retry shortly")
        served = self.policy.model_id
        if model is not None and model != served:
            raise ApiError(404, "unknown_model", f"model {model!r} is not served",
                           [{"served": served}])


def build_app(args: dict) -> serve.Application:
    """The application (Serve's builder signature: ``serve run serving.app:build_app
    model_path=runs/first``). Keys come from this process's environment (serving.auth).

    With ``chat_model_path`` (a chatbot model or LoRA adapter folder) the ChatServer
    deployment joins it behind ``POST /v1/chat``; ``data_path`` (the market store) keeps
    its facts live. Chat limits: ``chat_per_minute``/``chat_burst`` per API key,
    ``chat_max_history`` turns per conversation, ``chat_max_conversations`` kept."""
    from serving.auth import load_key_digests
    from serving.deployments import BacktestRunner, LiveHost

    model_path = str(args["model_path"])
    backtests = BacktestRunner.bind(str(args.get("results_dir", "results/serve")))
    digests = tuple(args["key_digests"]) if "key_digests" in args else load_key_digests()
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
    return gateway.bind(backtests, digests, int(args.get("max_batch_size", 32)),
                        float(args.get("batch_wait_s", 0.0005)), chat,
                        float(args.get("chat_per_minute", 30.0)),
                        int(args.get("chat_burst", 5)), args.get("live_dir"),
                        LiveHost.bind(str(args["live_dir"]), args.get("live_market"))
                        if args.get("live_dir") else None)
