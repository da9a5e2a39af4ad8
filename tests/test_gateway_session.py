"""``gateway.sessions.session`` without a network: a Session driven through a fake Connection.

The session is sans-I/O: it is fed whole frames and answers through ``Connection.send``;
the tests here give it a real ``Venue`` (the demo exchange) with a fixed wall clock and a
fake monotonic clock, so decode errors, rate limits, slow-reader closes and subscription
rules are checked exactly, without sockets or sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest

from engine.commands import PlaceOrder
from engine.types import OrderType, Side, TimeInForce
from gateway.app.serve import ServeOptions, build_exchange, fund_demo_participants
from gateway.hosts.local import LocalHost
from gateway.sequencer.venue import Venue
from gateway.sessions.session import CLOSE_POLICY, Gateway, Limits, Session
from gateway.wire.auth import generate_ed25519_key, sign, sign_ed25519

from .gateway_harness import ADMIN_KEY, KEYS, async_test

NOW_MS = 1_790_000_000_000  # 2026-09-22: inside every demo licence
BTC = "BTC-KZT"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeConnection:
    """Records what the session sends.  ``drains=False``: nothing is ever written out, so
    ``buffered()`` grows with every message, like a peer that stopped reading."""

    def __init__(self, *, drains: bool = True) -> None:
        self.drains = drains
        self.frames: list[bytes] = []
        self.backlog = 0
        self.closes: list[tuple[int, str]] = []

    def send(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.frames.append(data)
        if not self.drains:
            self.backlog += len(data)

    def buffered(self) -> int:
        return self.backlog

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def take(self) -> list[dict]:
        """The messages sent since the last ``take``, decoded."""
        out = [json.loads(frame) for frame in self.frames]
        self.frames.clear()
        return out


class Rig:
    """A gateway on the demo venue, and helpers to open and drive sessions."""

    def __init__(self, limits: Limits | None = None, *, admin_key: str | None = ADMIN_KEY):
        self.exchange = build_exchange(ServeOptions())
        fund_demo_participants(self.exchange, NOW_MS)
        self.venue = Venue(LocalHost(self.exchange), clock_ms=lambda: NOW_MS)
        self.clock = FakeClock()
        self.gateway = Gateway(
            self.venue, admin_key=admin_key, limits=limits or Limits(), monotonic=self.clock
        )

    def open(self, *, drains: bool = True) -> tuple[Session, FakeConnection]:
        connection = FakeConnection(drains=drains)
        return self.gateway.open_session(connection), connection

    def login(self, name: str, **open_args: Any) -> tuple[Session, FakeConnection]:
        session, connection = self.open(**open_args)
        response = request(session, connection, "auth.login", login(name))
        assert response["ok"] is True, response
        return session, connection

    def place(self, participant: str, side: Side, price: int, qty: int) -> None:
        """Run a limit order straight through the engine and publish its reports."""
        reports = self.exchange.execute(
            PlaceOrder(
                ts=NOW_MS,
                participant_id=participant,
                market=BTC,
                side=side,
                qty=qty,
                order_type=OrderType.LIMIT,
                price=price,
                tif=TimeInForce.GTC,
            )
        )
        self.venue.publish(reports)


_login_count = itertools.count(1)


def login(name: str, timestamp: int | None = None) -> dict:
    """Login params for a demo participant; each call a timestamp of its own (the server
    refuses a replayed login frame)."""
    api_key, private_key = KEYS[name]
    if timestamp is None:
        timestamp = NOW_MS - next(_login_count) % 20_000
    return {
        "api_key": api_key,
        "timestamp": timestamp,
        "signature": sign_ed25519(private_key, api_key, timestamp),
    }


def request(
    session: Session,
    connection: FakeConnection,
    method: str,
    params: dict | None = None,
    request_id: Any = 1,
) -> dict:
    """Feed one request; return the one answer it got at once (a synchronous method)."""
    frame: dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        frame["params"] = params
    session.on_frame(json.dumps(frame))
    messages = connection.take()
    answers = [m for m in messages if "channel" not in m]
    assert len(answers) == 1, messages
    return answers[0]


def assert_alive(session: Session, connection: FakeConnection) -> None:
    assert not session.closed and connection.closes == []
    response = request(session, connection, "ping", request_id="alive?")
    assert response["ok"] is True and response["result"] == {"pong": True, "time": NOW_MS}


# -- decode errors ---------------------------------------------------------------------------

BAD_FRAMES = [
    # frame, code, the id echoed, text the message contains
    (b"{", "INVALID_REQUEST", None, "JSON"),
    ("ping", "INVALID_REQUEST", None, "JSON"),
    ("[]", "INVALID_REQUEST", None, "object"),
    ("17", "INVALID_REQUEST", None, "object"),
    ('"ping"', "INVALID_REQUEST", None, "object"),
    ("null", "INVALID_REQUEST", None, "object"),
    ('{"id": 3}', "INVALID_REQUEST", 3, "method"),
    ('{"id": 3, "method": 7}', "INVALID_REQUEST", 3, "method"),
    ('{"id": 3.5, "method": "ping"}', "INVALID_REQUEST", None, "$.id"),
    ('{"id": [1], "method": "ping"}', "INVALID_REQUEST", None, "$.id"),
    ('{"id": 4, "method": "order.nuke"}', "UNKNOWN_METHOD", 4, "order.nuke"),
    ('{"id": "x", "method": "PING"}', "UNKNOWN_METHOD", "x", "PING"),
    ('{"id": "a", "method": "ping", "params": {"x": 1}}', "INVALID_PARAMS", "a", "`x`"),
    ('{"id": 5, "method": "ping", "params": []}', "INVALID_PARAMS", 5, "$.params"),
    (
        '{"id": 6, "method": "subscribe", "params": {"channels": "book:BTC-KZT"}}',
        "INVALID_PARAMS",
        6,
        "$.params.channels",
    ),
    (
        '{"id": 7, "method": "order.place", "params": {"market": "BTC-KZT", "side": "buy",'
        ' "qty": "1", "price": "1", "client_order_id": "has space"}}',
        "INVALID_PARAMS",
        7,
        "$.params.client_order_id",
    ),
    (
        '{"id": 8, "method": "session.cancel_all_after", "params": {"timeout_ms": 3600001}}',
        "INVALID_PARAMS",
        8,
        "$.params.timeout_ms",
    ),
    ('{"id": 9, "method": "auth.login", "params": {}}', "INVALID_PARAMS", 9, "api_key"),
    ('{"id": 10, "method": "order.cancel"}', "INVALID_PARAMS", 10, "params"),
]


@pytest.mark.parametrize(("frame", "code", "request_id", "text"), BAD_FRAMES)
def test_decode_errors_answer_once_and_keep_the_session(
    frame: str | bytes, code: str, request_id: Any, text: str
) -> None:
    rig = Rig()
    session, connection = rig.login("bob")
    session.on_frame(frame)
    (answer,) = connection.take()
    assert answer["ok"] is False and answer["id"] == request_id
    assert answer["error"]["code"] == code
    assert text in answer["error"]["message"]
    assert_alive(session, connection)


@pytest.mark.parametrize("request_id", [0, ""])
def test_a_falsy_id_is_echoed_with_a_decode_error(request_id: Any) -> None:
    session, connection = Rig().open()
    session.on_frame(json.dumps({"id": request_id, "method": "order.nuke"}))
    (answer,) = connection.take()
    assert answer["error"]["code"] == "UNKNOWN_METHOD"
    assert answer["id"] == request_id


def test_a_frame_that_is_not_utf8_is_an_invalid_request() -> None:
    session, connection = Rig().open()
    session.on_frame(b'{"id": 1, "method": "ping\xff"}')
    (answer,) = connection.take()
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert_alive(session, connection)


def test_a_falsy_id_is_echoed_on_success() -> None:
    session, connection = Rig().open()
    assert request(session, connection, "ping", request_id=0)["id"] == 0
    assert request(session, connection, "ping", request_id="")["id"] == ""


def test_auth_checks_come_after_decoding_and_before_the_venue() -> None:
    rig = Rig()
    session, connection = rig.open()
    place = {"market": BTC, "side": "buy", "qty": "0.01", "price": "45000000"}
    assert request(session, connection, "order.place", place)["error"]["code"] == (
        "UNAUTHENTICATED"
    )
    bad = dict(place, side="hold")
    assert request(session, connection, "order.place", bad)["error"]["code"] == "INVALID_PARAMS"
    deposit = {"participant_id": "bob", "asset": "KZT", "amount": "1"}
    error = request(session, connection, "admin.deposit", deposit)["error"]
    assert error == {"code": "UNAUTHENTICATED", "message": "admin login required"}
    assert rig.exchange.open_orders("bob") == []
    assert_alive(session, connection)


# -- login -----------------------------------------------------------------------------------


def test_login_timestamp_window_is_inclusive() -> None:
    rig = Rig(Limits(login_window_ms=5_000))
    for timestamp, ok in (
        (NOW_MS - 5_000, True),
        (NOW_MS + 5_000, True),
        (NOW_MS - 5_001, False),
        (NOW_MS + 5_001, False),
    ):
        session, connection = rig.open()
        answer = request(session, connection, "auth.login", login("bob", timestamp))
        assert answer["ok"] is ok, (timestamp, answer)
        if not ok:
            assert answer["error"]["code"] == "AUTH_FAILED"
            assert session.participant_id is None


def test_login_failures() -> None:
    rig = Rig()
    session, connection = rig.open()
    tampered = dict(login("bob"), signature="0" * 64)
    assert request(session, connection, "auth.login", tampered)["error"]["code"] == "AUTH_FAILED"
    # a key whose participant is another one's: the signature is checked with the right secret
    crossed = dict(login("mm1"), api_key=KEYS["bob"][0])
    assert request(session, connection, "auth.login", crossed)["error"]["code"] == "AUTH_FAILED"
    params = login("bob")
    upper = dict(params, signature=params["signature"].upper())
    assert request(session, connection, "auth.login", upper)["ok"] is True
    assert session.participant_id == "bob"


def test_a_replayed_login_frame_is_refused() -> None:
    """The same login frame on a second connection, within the window, is refused; a fresh
    timestamp logs in; the hex in another case is the same frame."""
    rig = Rig()
    params = login("bob")
    first, first_connection = rig.open()
    assert request(first, first_connection, "auth.login", params)["ok"] is True
    for replay in (params, dict(params, signature=params["signature"].upper())):
        second, second_connection = rig.open()
        answer = request(second, second_connection, "auth.login", replay)
        assert answer["error"]["code"] == "AUTH_FAILED"
        assert "replayed" in answer["error"]["message"]
        assert second.participant_id is None
    third, third_connection = rig.open()
    assert request(third, third_connection, "auth.login", login("bob"))["ok"] is True
    # another key's login at the same millisecond is not a replay
    mm1, mm1_connection = rig.open()
    same_ms = login("mm1", params["timestamp"])
    assert request(mm1, mm1_connection, "auth.login", same_ms)["ok"] is True


def test_a_failed_login_is_not_remembered() -> None:
    """Only good logins enter the replay memory: a bad signature at a timestamp does not
    spend it."""
    rig = Rig()
    params = login("bob")
    session, connection = rig.open()
    wrong = dict(params, signature="1" * 128)
    assert request(session, connection, "auth.login", wrong)["error"]["code"] == "AUTH_FAILED"
    assert request(session, connection, "auth.login", params)["ok"] is True


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        ("0" * 64, "AUTH_FAILED"),  # an HMAC-length signature for an Ed25519 key
        ("0" * 128, "AUTH_FAILED"),
        ("f" * 128, "AUTH_FAILED"),
        ("g" * 128, "INVALID_PARAMS"),  # not hex
        ("0" * 96, "INVALID_PARAMS"),
        ("0" * 63, "INVALID_PARAMS"),
        ("0" * 130, "INVALID_PARAMS"),
        ("é" * 64, "INVALID_PARAMS"),
        ("0" * 127 + "\u0000", "INVALID_PARAMS"),
    ],
)
def test_garbage_signatures_are_refused_cleanly(signature: str, code: str) -> None:
    rig = Rig()
    session, connection = rig.open()
    answer = request(session, connection, "auth.login", dict(login("bob"), signature=signature))
    assert answer["error"]["code"] == code, answer
    assert session.participant_id is None


def _register(rig: Rig, admin: Session, connection: FakeConnection, **credential: str) -> dict:
    params = {
        "participant_id": "carol",
        "category": "PROFESSIONAL",
        "residency": "KZ",
        "kyc_level": 3,
        "api_key": "carol-key-1",
        **credential,
    }
    admin.on_frame(json.dumps({"id": 9, "method": "admin.participant", "params": params}))
    return params


@async_test
async def test_an_hmac_secret_is_sealed_before_it_is_sequenced() -> None:
    """admin.participant with an api_secret: the command the engine gets carries only the
    sealed secret, and the key logs in with HMAC."""
    rig = Rig()
    rig.venue.start()
    try:
        admin, admin_connection = rig.open()
        request(admin, admin_connection, "auth.admin", {"admin_key": ADMIN_KEY})
        _register(rig, admin, admin_connection, api_secret="carol-s3cret-value")
        for _ in range(100):
            await asyncio.sleep(0.005)
            if rig.exchange.registry.participant("carol") is not None:
                break
        carol = rig.exchange.registry.participant("carol")
        assert carol is not None and carol.api_secret is None
        assert carol.api_secret_sealed and "carol-s3cret-value" not in carol.api_secret_sealed
        assert "carol-s3cret-value" not in repr(rig.exchange.registry.participants)
        session, connection = rig.open()
        good = {
            "api_key": "carol-key-1",
            "timestamp": NOW_MS,
            "signature": sign("carol-s3cret-value", "carol-key-1", NOW_MS),
        }
        wrong = dict(good, signature=sign("another-secret", "carol-key-1", NOW_MS))
        assert request(session, connection, "auth.login", wrong)["error"]["code"] == "AUTH_FAILED"
        long = dict(good, signature=sign_ed25519(KEYS["bob"][1], "carol-key-1", NOW_MS))
        assert request(session, connection, "auth.login", long)["error"]["code"] == "AUTH_FAILED"
        assert request(session, connection, "auth.login", good)["ok"] is True
        assert session.participant_id == "carol"
    finally:
        await rig.venue.stop()


@async_test
async def test_admin_participant_takes_an_ed25519_public_key() -> None:
    rig = Rig()
    rig.venue.start()
    try:
        admin, admin_connection = rig.open()
        request(admin, admin_connection, "auth.admin", {"admin_key": ADMIN_KEY})
        private_key, public_key = generate_ed25519_key()
        _register(rig, admin, admin_connection, api_public_key="00" * 32 + "zz")
        answer = json.loads(admin_connection.frames.pop())
        assert answer["error"]["code"] == "INVALID_PARAMS"
        _register(rig, admin, admin_connection, api_public_key=public_key)
        for _ in range(100):
            await asyncio.sleep(0.005)
            if rig.exchange.registry.participant("carol") is not None:
                break
        session, connection = rig.open()
        params = {
            "api_key": "carol-key-1",
            "timestamp": NOW_MS,
            "signature": sign_ed25519(private_key, "carol-key-1", NOW_MS),
        }
        assert request(session, connection, "auth.login", params)["ok"] is True
        assert session.participant_id == "carol"
    finally:
        await rig.venue.stop()


def test_admin_login_needs_a_server_key() -> None:
    session, connection = Rig(admin_key=None).open()
    answer = request(session, connection, "auth.admin", {"admin_key": "anything"})
    assert answer["error"]["code"] == "AUTH_FAILED" and not session.is_admin
    market = {"market": BTC, "status": "halted"}
    answer = request(session, connection, "admin.market", market)
    assert answer["error"]["code"] == "UNAUTHENTICATED"


# -- rate limits -----------------------------------------------------------------------------


def retry_ms(answer: dict) -> int:
    assert answer["error"]["code"] == "RATE_LIMITED", answer
    match = re.search(r"retry after (\d+) ms", answer["error"]["message"])
    assert match, answer
    return int(match.group(1))


def test_connection_rate_limit_with_a_fake_clock() -> None:
    # rates and steps that are exact in binary floating point
    rig = Rig(Limits(connection_rate=8, connection_burst=2))
    session, connection = rig.open()
    assert request(session, connection, "ping")["ok"]
    assert request(session, connection, "ping")["ok"]
    answer = request(session, connection, "ping", request_id=3)
    assert answer["id"] == 3 and 125 <= retry_ms(answer) <= 126
    rig.clock.advance(0.0625)  # half a token back
    assert 62 <= retry_ms(request(session, connection, "ping")) <= 63
    rig.clock.advance(0.0625)
    assert request(session, connection, "ping")["ok"]
    assert request(session, connection, "ping")["error"]["code"] == "RATE_LIMITED"
    # a long pause refills the bucket only up to the burst
    rig.clock.advance(60)
    assert request(session, connection, "ping")["ok"]
    assert request(session, connection, "ping")["ok"]
    assert request(session, connection, "ping")["error"]["code"] == "RATE_LIMITED"
    # another connection has its own bucket
    other, other_connection = rig.open()
    assert request(other, other_connection, "ping")["ok"]
    assert not session.closed and connection.closes == []


def test_participant_rate_limit_is_shared_by_its_sessions() -> None:
    rig = Rig(Limits(participant_rate=8, participant_burst=3))
    one, one_connection = rig.login("bob")  # logins do not count against the participant
    two, two_connection = rig.login("bob")
    mm1, mm1_connection = rig.login("mm1")
    anonymous, anonymous_connection = rig.open()
    # three tokens for bob, whichever session spends them
    assert request(one, one_connection, "ping")["ok"]
    assert request(two, two_connection, "ping")["ok"]
    assert request(one, one_connection, "ping")["ok"]
    assert 125 <= retry_ms(request(two, two_connection, "ping")) <= 126
    assert request(one, one_connection, "ping")["error"]["code"] == "RATE_LIMITED"
    # other participants and anonymous sessions are not affected
    for _ in range(3):
        assert request(mm1, mm1_connection, "ping")["ok"]
    for _ in range(10):
        assert request(anonymous, anonymous_connection, "ping")["ok"]
    rig.clock.advance(0.125)
    assert request(two, two_connection, "ping")["ok"]
    assert request(one, one_connection, "ping")["error"]["code"] == "RATE_LIMITED"


@async_test
async def test_a_rate_limited_order_never_reaches_the_engine() -> None:
    rig = Rig(Limits(connection_rate=10, connection_burst=2))
    rig.venue.start()
    session, connection = rig.login("bob")  # token 1
    assert request(session, connection, "ping")["ok"]  # token 2
    place = {"market": BTC, "side": "buy", "qty": "0.01", "price": "44000000"}
    answer = request(session, connection, "order.place", place, request_id="p")
    assert answer["id"] == "p" and answer["error"]["code"] == "RATE_LIMITED"
    await rig.venue.stop()  # runs whatever was submitted
    assert rig.venue.commands_executed == 0
    assert rig.exchange.open_orders("bob") == []
    assert connection.take() == []


# -- order entry through the sequencer -------------------------------------------------------


@async_test
async def test_pipelined_orders_are_executed_and_answered_in_order() -> None:
    rig = Rig()
    rig.venue.start()
    session, connection = rig.login("bob")
    for i in range(5):
        params = {"market": BTC, "side": "buy", "qty": "0.01", "price": str(44_000_000 + i)}
        session.on_frame(json.dumps({"id": i, "method": "order.place", "params": params}))
    assert connection.take() == []  # answered only once executed
    await rig.venue.stop()
    answers = connection.take()
    assert [a["id"] for a in answers] == [0, 1, 2, 3, 4]
    order_ids = [a["result"]["order_id"] for a in answers]
    assert order_ids == sorted(order_ids)
    assert [a["result"]["price"] for a in answers] == [f"{44_000_000 + i}.00" for i in range(5)]


# -- slow readers ----------------------------------------------------------------------------


def test_slow_reader_is_closed_with_a_policy_code_and_forgotten() -> None:
    rig = Rig(Limits(max_buffered_bytes=2_000))
    slow, slow_connection = rig.login("bob", drains=False)
    healthy, healthy_connection = rig.open()
    for session, connection in ((slow, slow_connection), (healthy, healthy_connection)):
        channels = [f"book:{BTC}", f"trades:{BTC}"]
        assert request(session, connection, "subscribe", {"channels": channels})["ok"]
    assert request(slow, slow_connection, "subscribe", {"channels": ["orders"]})["ok"]
    assert slow_connection.buffered() < 2_000 and slow_connection.closes == []

    updates = 0
    while not slow.closed:
        updates += 1
        assert updates < 100, "never closed"
        rig.place("mm1", Side.SELL, 4_600_000_000 + updates * 100, 1_000_000)
    assert slow_connection.closes == [(CLOSE_POLICY, "slow reader: more than 2000 bytes queued")]
    assert slow not in rig.gateway.sessions
    assert all(slow not in subscribers for subscribers in rig.venue.channels.subscribers.values())
    assert "bob" not in rig.venue.order_listeners

    # it gets nothing more; the healthy subscriber gets everything
    sent = len(slow_connection.frames)
    for i in range(5):
        rig.place("mm1", Side.SELL, 4_700_000_000 + i * 100, 1_000_000)
    rig.place("bob", Side.BUY, 4_400_000_000, 1_000_000)
    assert len(slow_connection.frames) == sent
    slow.on_frame(json.dumps({"id": 1, "method": "ping"}))  # frames after the close: ignored
    assert len(slow_connection.frames) == sent
    book = [m for m in healthy_connection.take() if m.get("channel") == "book"]
    assert [m["seq"] for m in book] == list(range(book[0]["seq"], book[0]["seq"] + len(book)))
    assert book[-1]["seq"] == rig.exchange.books[BTC].seq
    slow.on_close()  # the transport reports the close later: harmless
    assert slow_connection.closes == [(CLOSE_POLICY, "slow reader: more than 2000 bytes queued")]


@async_test
async def test_slow_reader_close_cancels_its_orders_when_asked() -> None:
    rig = Rig(Limits(max_buffered_bytes=4_000))
    rig.venue.start()
    slow, connection = rig.login("bob", drains=False)
    request(slow, connection, "session.cancel_on_disconnect", {"enabled": True})
    params = {"market": BTC, "side": "buy", "qty": "0.01", "price": "44000000"}
    slow.on_frame(json.dumps({"id": 2, "method": "order.place", "params": params}))
    await asyncio.sleep(0)  # let the sequencer run
    while not connection.frames:
        await asyncio.sleep(0.001)
    (placed,) = connection.take()
    assert placed["result"]["status"] == "new"
    assert request(slow, connection, "subscribe", {"channels": [f"book:{BTC}"]})["ok"]
    while not slow.closed:
        rig.place("mm1", Side.SELL, 4_600_000_000 + len(connection.frames) * 100, 1_000_000)
    assert [o.order_id for o in rig.exchange.open_orders("bob")] == [placed["result"]["order_id"]]
    await rig.venue.stop()  # runs the cancels the close submitted
    assert rig.exchange.open_orders("bob") == []


# -- subscriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "code"),
    [
        ([f"book:{BTC}", "candles:BTC-KZT"], "INVALID_PARAMS"),
        ([f"trades:{BTC}", "book:DOGE-KZT"], "INVALID_PARAMS"),
        (["book:btc-kzt"], "INVALID_PARAMS"),
        (["book:"], "INVALID_PARAMS"),
        (["book"], "INVALID_PARAMS"),
        (["BTC-KZT"], "INVALID_PARAMS"),
        ([], "INVALID_PARAMS"),
        (["book:" + "X" * 60], "INVALID_PARAMS"),
        ([f"book:{BTC}"] * 65, "INVALID_PARAMS"),
        ([f"book:{BTC}", "orders"], "UNAUTHENTICATED"),
    ],
)
def test_subscribe_validation_is_all_or_nothing(channels: list[str], code: str) -> None:
    rig = Rig()
    session, connection = rig.open()
    answer = request(session, connection, "subscribe", {"channels": channels})
    assert answer["error"]["code"] == code
    assert session.channels == set()
    assert all(session not in s for s in rig.venue.channels.subscribers.values())
    rig.place("mm1", Side.SELL, 4_600_000_000, 1_000_000)
    assert connection.take() == []  # no snapshot, no updates
    assert_alive(session, connection)


def test_subscribe_answers_then_sends_one_snapshot_per_book() -> None:
    rig = Rig()
    rig.place("mm1", Side.SELL, 4_600_000_000, 1_000_000)
    rig.place("mm1", Side.BUY, 4_400_000_000, 2_000_000)
    session, connection = rig.login("bob")
    channels = ["orders", f"trades:{BTC}", f"book:{BTC}", f"book:{BTC}", "book:ETH-KZT"]
    session.on_frame(json.dumps({"id": 1, "method": "subscribe", "params": {"channels": channels}}))
    answer, *snapshots = connection.take()
    assert answer == {
        "id": 1,
        "ok": True,
        "result": {"channels": sorted({"orders", f"trades:{BTC}", f"book:{BTC}", "book:ETH-KZT"})},
    }
    assert [(s["market"], s["seq"], s["data"]["type"]) for s in snapshots] == [
        (BTC, rig.exchange.books[BTC].seq, "snapshot"),
        ("ETH-KZT", 0, "snapshot"),
    ]
    assert snapshots[0]["data"]["bids"] == [["44000000.00", "0.02000000"]]
    assert snapshots[0]["data"]["asks"] == [["46000000.00", "0.01000000"]]
    # the next change is the update with the next seq; private reports reach "orders"
    rig.place("bob", Side.BUY, 4_410_000_000, 1_000_000)
    messages = connection.take()
    (update,) = [m for m in messages if m.get("channel") == "book"]
    assert update["seq"] == snapshots[0]["seq"] + 1
    assert update["data"]["bids"] == [["44100000.00", "0.01000000"]]
    assert next(m["data"]["type"] for m in messages if m.get("channel") == "orders") == "order"
    # unsubscribe stops it (unsubscribing what is not subscribed is not an error)
    answer = request(session, connection, "unsubscribe", {"channels": [f"book:{BTC}", "nope"]})
    assert answer["result"] == {"channels": sorted({"orders", f"trades:{BTC}", "book:ETH-KZT"})}
    rig.place("mm1", Side.SELL, 4_610_000_000, 1_000_000)
    assert [m for m in connection.take() if m.get("channel") == "book"] == []


def test_close_unsubscribes_everything_and_is_idempotent() -> None:
    rig = Rig()
    session, connection = rig.login("bob")
    channels = ["orders", f"book:{BTC}", f"trades:{BTC}"]
    assert request(session, connection, "subscribe", {"channels": channels})["ok"]
    connection.take()
    session.on_close()
    session.on_close()
    assert session.closed and session not in rig.gateway.sessions
    assert rig.venue.order_listeners == {}
    rig.place("bob", Side.BUY, 4_400_000_000, 1_000_000)
    session.on_frame(json.dumps({"id": 1, "method": "ping"}))
    assert connection.frames == [] and connection.closes == []
