"""A peer that goes silent without closing (a crashed bot, a cut cable) is found by the
server's pings and dropped, and then cancel-on-disconnect pulls its orders: a market maker
relies on this to not leave quotes behind.  (The picows transport, the default.)"""

from __future__ import annotations

import asyncio
import json

from picows import WSListener, WSMsgType, ws_connect

import gateway.transport.picows_server as server_picows

from .gateway_harness import async_test, login_params, running_venue

BTC = "BTC-KZT"


class SilentBot(WSListener):
    """A client that does not answer pings (``enable_auto_pong=False``, and pings are
    ignored here), as a process that hangs would not."""

    def __init__(self) -> None:
        super().__init__()
        self.transport = None
        self.answers: asyncio.Queue[dict] = asyncio.Queue()
        self.pings = 0
        self.disconnected = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            message = json.loads(frame.get_payload_as_bytes())
            if "id" in message:
                self.answers.put_nowait(message)
        elif frame.msg_type is WSMsgType.PING:
            self.pings += 1  # and no pong

    def on_ws_disconnected(self, transport) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    async def call(self, request_id: int, method: str, params: dict) -> dict:
        payload = {"id": request_id, "method": method, "params": params}
        self.transport.send(WSMsgType.TEXT, json.dumps(payload).encode())
        answer = await asyncio.wait_for(self.answers.get(), 5)
        assert answer["id"] == request_id and answer["ok"], answer
        return answer["result"]


@async_test
async def test_a_silent_peer_is_dropped_and_its_orders_canceled(monkeypatch) -> None:
    monkeypatch.setenv("ALATAU_TRANSPORT", "picows")
    # (with an idle timeout of 0.2 s picows dropped the connection during the handshake)
    monkeypatch.setattr(server_picows, "PING_IDLE_S", 0.5)
    monkeypatch.setattr(server_picows, "PING_REPLY_S", 0.5)
    async with running_venue() as v:
        _, bot = await ws_connect(SilentBot, f"ws://{v.host}:{v.port}", enable_auto_pong=False)
        await bot.call(1, "auth.login", login_params("bob"))
        await bot.call(2, "session.cancel_on_disconnect", {"enabled": True})
        placed = await bot.call(
            3, "order.place", {"market": BTC, "side": "buy", "price": "44000000", "qty": "0.01"}
        )
        assert [o.order_id for o in v.exchange.open_orders("bob")] == [placed["order_id"]]
        await asyncio.wait_for(bot.disconnected, 5)  # idle 0.5 s, then 0.5 s without a pong
        assert bot.pings >= 1
        for _ in range(100):
            if not v.exchange.open_orders("bob"):
                break
            await asyncio.sleep(0.02)
        assert v.exchange.open_orders("bob") == []
        assert not v.gateway.sessions  # the session is gone too
