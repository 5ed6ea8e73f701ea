"""The trading chatbot as a Serve deployment behind the Gateway's ``POST /v1/chat``.

One replica holds one chatbot model (llm.chatbot.MarketChatbot) and the recent turns of
many conversations (least recently used dropped past ``max_conversations``; each keeps
``max_history`` turns). Its facts stay live: at most every ``refresh_s`` it reads the
latest stored bars for the policy's assets (and the headlines collected beside them)
and asks the Gateway, through a DeploymentHandle, for the policy's signal on them, so
answers about "the signal" are the served policy's current one, with its timestamp.

Generation runs in a worker thread (the replica's event loop keeps answering health
checks and other conversations' queue positions) one request at a time: one model on a
small CPU budget gains nothing from interleaving. Streaming yields the grounded answer
in word pieces; grounding needs the whole answer first (llm.chatbot), so a stream starts
when the answer is checked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

from ray import serve

log = logging.getLogger(__name__)
RETRY_S = 5.0
"""Seconds before a failed facts refresh is tried again."""


@serve.deployment(
    max_ongoing_requests=32,
    ray_actor_options={"num_cpus": 0},
    logging_config={"enable_access_log": False},
)
class ChatServer:
    def __init__(
        self,
        model_path: str,
        base_model: str | None = None,
        data_path: str | None = None,
        exchange: str = "synthetic",
        app_name: str = "quantum",
        max_history: int = 5,
        max_conversations: int = 1_000,
        refresh_s: float = 60.0,
        device: str = "cpu",
    ) -> None:
        import torch

        from llm.chatbot import load_market_chatbot

        torch.set_num_threads(1)
        self.bot = load_market_chatbot(model_path, base_model, max_history, device)
        self.model_name = Path(model_path).name
        self.data_path, self.exchange, self.app_name = data_path, exchange, app_name
        self.max_history, self.max_conversations = max_history, max_conversations
        self.refresh_s = refresh_s
        self.conversations: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self.signal_model: str | None = None
        self._refreshed = -float("inf")
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        """Reload the latest bars and the policy's signal on them, when stale. A failure
        (no data yet, the policy still loading) keeps the previous facts, is logged and is
        retried after RETRY_S: the chatbot meanwhile says the facts are not loaded rather
        than failing the request."""
        if self.data_path is None or time.monotonic() - self._refreshed < self.refresh_s:
            return
        self._refreshed = time.monotonic()
        try:
            gateway = serve.get_deployment_handle("Gateway", app_name=self.app_name)
            info = await gateway.live_info.remote()
            frame, bars = await asyncio.to_thread(self._bars, info)
            self.bot.update_market_data(frame)
            news = await asyncio.to_thread(self._news, frame)
            if news is not None:
                self.bot.update_news(news)
            signal = await gateway.live_signal.remote(bars)
            self.bot.update_signals(signal)
            self.signal_model = signal.get("model_id")
        except Exception as err:
            log.warning("chat facts not refreshed: %s", err)
            self._refreshed -= max(0.0, self.refresh_s - RETRY_S)  # retry soon, not in a minute

    def _bars(self, info: dict):
        """Three days of the aligned frame (market facts) and its last ``min_bars`` rows as
        the API's bars (the policy's signal), from one read of the store."""
        from serving.bars import bars_from_frame, recent_frame

        count = max(int(info["min_bars"]), 3 * 1440)
        frame = recent_frame(self.data_path, info["assets"], count, self.exchange,
                             info["timeframe"])
        return frame, bars_from_frame(frame.iloc[-int(info["min_bars"]) :])

    def _news(self, frame):
        """The headlines `quantum news collect` stored beside the bars since the frame's
        first bar, or None when the store holds no news."""
        from news.store import NewsStore

        store = NewsStore(self.data_path)
        if not any(store.directory.glob("month=*/data.parquet")):
            return None
        return store.read(start=frame.index[0])

    async def reply(self, conversation_id: str | None, message: str) -> dict:
        async with self._lock:
            await self._refresh()
            cid = conversation_id or uuid.uuid4().hex
            history = list(self.conversations.get(cid, []))
            answer = await asyncio.to_thread(self.bot.reply, message, history)
            turns = [*history, (message, answer.text)][-self.max_history :]
            self.conversations[cid] = turns
            self.conversations.move_to_end(cid)
            while len(self.conversations) > self.max_conversations:
                self.conversations.popitem(last=False)
        return {
            **answer.to_dict(),
            "conversation_id": cid,
            "history_turns": len(history),
            "model": self.model_name,
            "signal_model": self.signal_model,
        }

    async def stream(self, conversation_id: str | None, message: str) -> AsyncIterator[dict]:
        """The reply as events: ``{"delta": piece}`` per word, then ``{"done": reply}``."""
        body = await self.reply(conversation_id, message)
        for piece in re.findall(r"\S+\s*|\s+", body["text"]):
            yield {"delta": piece}
        yield {"done": body}
