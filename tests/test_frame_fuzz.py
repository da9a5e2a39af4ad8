"""A seeded frame fuzzer: no frame a client sends may close its connection.

Valid frames of every method are mutated (byte flips, truncation, junk, type swaps, deep
nesting, unicode, huge numbers, duplicated keys, binary) and fed to a logged-in session
that has cancel-on-disconnect on and resting orders.  Every frame must get exactly one
answer, echoing the frame's id wherever the id can be read; the connection must stay open,
the resting orders must still rest, the venue must still execute orders, and the log must
stay short.  10,000 frames go through the sans-I/O session, 500 through a running server
over a real websocket (so the transport survives them too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from typing import Any

import pytest

from gateway.sessions.session import Limits
from gateway.wire import protocol

from .gateway_harness import async_test, running_venue
from .test_gateway_session import Rig, login

GUARD_MARKET = "USDC-KZT"  # the resting orders' market; the seeds never name it
GUARD_PRICES = ["500.00", "500.01", "500.02"]

SEEDS: list[dict[str, Any]] = [
    {"id": 1, "method": "ping"},
    {"id": "m", "method": "markets.list"},
    {"id": 2, "method": "auth.login", "params": login("bob")},
    {"id": 3, "method": "auth.admin", "params": {"admin_key": "not-the-key"}},
    {
        "id": 4,
        "method": "order.place",
        "params": {
            "market": "BTC-KZT",
            "side": "buy",
            "qty": "0.001",
            "price": "44000000",
            "tif": "GTC",
            "post_only": True,
            "client_order_id": "fz-1",
            "stp": "cancel_newest",
        },
    },
    {
        "id": 5,
        "method": "order.place",
        "params": {"market": "ETH-KZT", "side": "sell", "type": "market", "qty": "0.01"},
    },
    {"id": 6, "method": "order.cancel", "params": {"market": "BTC-KZT", "order_id": 123}},
    {"id": 7, "method": "order.cancel", "params": {"market": "BTC-KZT", "client_order_id": "x"}},
    {
        "id": 8,
        "method": "order.amend",
        "params": {"market": "BTC-KZT", "order_id": 99, "qty": "0.002", "price": "44000001"},
    },
    {"id": 9, "method": "order.cancel_all", "params": {"market": "ETH-KZT", "side": "buy"}},
    {
        "id": 10,
        "method": "order.batch",
        "params": {
            "orders": [
                {"market": "BTC-KZT", "side": "buy", "qty": "0.001", "price": "44000002"},
                {"market": "ETH-KZT", "side": "sell", "qty": "0.01", "price": "1800000"},
            ]
        },
    },
    {
        "id": 11,
        "method": "order.cancel_batch",
        "params": {
            "orders": [
                {"market": "BTC-KZT", "order_id": 5},
                {"market": "ETH-KZT", "client_order_id": "y"},
            ]
        },
    },
    {
        "id": 12,
        "method": "orders.open",
        "params": {"market": "BTC-KZT", "limit": 5, "after_order_id": 1},
    },
    {"id": 13, "method": "account.balances"},
    {"id": 14, "method": "session.cancel_on_disconnect", "params": {"enabled": True}},
    {"id": 15, "method": "session.cancel_all_after", "params": {"timeout_ms": 0}},
    {"id": 16, "method": "subscribe", "params": {"channels": ["book:BTC-KZT", "orders"]}},
    {"id": 17, "method": "unsubscribe", "params": {"channels": ["trades:ETH-KZT"]}},
    {"id": 18, "method": "admin.license", "params": {"license_id": "L1", "markets": "*"}},
    {"id": 19, "method": "admin.participant", "params": {"participant_id": "zed"}},
    {
        "id": 20,
        "method": "admin.deposit",
        "params": {"participant_id": "bob", "asset": "KZT", "amount": "1"},
    },
    {
        "id": 21,
        "method": "admin.withdraw",
        "params": {"participant_id": "bob", "asset": "KZT", "amount": "1"},
    },
    {"id": 22, "method": "admin.market", "params": {"market": "BTC-KZT", "status": "open"}},
    {"id": 23, "method": "health"},
    {"id": 24, "method": "order.status", "params": {"order_id": 7}},
    {
        "id": 25,
        "method": "orders.history",
        "params": {"market": "BTC-KZT", "start": 0, "end": 9, "limit": 5, "cursor": "9:o3"},
    },
    {"id": 26, "method": "fills.history", "params": {"limit": 2, "cursor": "9:1:3"}},
    {"id": 27, "method": "trades.recent", "params": {"market": "ETH-KZT", "limit": 3}},
    {"id": 28, "method": "market.depth", "params": {"market": "BTC-KZT", "limit": 10}},
]
assert {seed["method"] for seed in SEEDS} == set(protocol.METHODS)

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -0.0,
    2**63,
    2**64,
    -(2**63) - 1,
    "",
    " ",
    "0",
    "-1",
    "1e5",
    "١٢",
    "é" * 64,
    "\u0000",
    "\ud7ff" * 3,
    "x" * 5000,
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": {}}},
    "BTC-KZT",
    "buy",
    "market",
    "IOC",
    "cancel_both",
    "orders",
]
JUNK = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\\",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x00",
    b"\\ud800",
    b"\\u0000",
    b" " * 3,
    b"NaN",
    b"Infinity",
    b"9" * 400,
    b'"id":7,',
    b'"method":"ping",',
    b'"params":{},',
]


def _walk(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (dict keys and list indexes)."""
    paths = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            paths.extend(_walk(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths.extend(_walk(item, (*path, index)))
    return paths


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    out = dict(value) if isinstance(value, dict) else list(value)
    out[head] = _replace(value[head], rest, new)
    return out


def _deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "[" else ('{"a":' * depth + "1" + "}" * depth)


def _encode(value: Any, rnd: random.Random) -> bytes:
    return json.dumps(value, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass")


def mutate(rnd: random.Random) -> bytes:
    """One mutated frame (a valid one now and then, too)."""
    seed = rnd.choice(SEEDS)
    kind = rnd.randrange(12)
    if kind == 0:  # a type swap at a random path
        path = rnd.choice(_walk(seed))
        return _encode(_replace(seed, path, rnd.choice(ODD_VALUES)), rnd)
    if kind == 1:  # a key dropped or added
        path = rnd.choice([p for p in _walk(seed) if p])
        parent = _replace(seed, (), seed)
        target = parent
        for step in path[:-1]:
            target = target[step]
        if isinstance(target, dict):
            if rnd.random() < 0.5:
                target = {k: v for k, v in target.items() if k != path[-1]}
            else:
                target = dict(target, **{rnd.choice(["extra", "id", "é", ""]): 1})
            return _encode(_replace(seed, path[:-1], target), rnd)
        return _encode(seed, rnd)
    if kind == 2:  # deep nesting in place of a value
        depth = rnd.choice([64, 600, 5_000, 20_000])
        path = rnd.choice(_walk(seed))
        marker = "__DEEP__"
        text = json.dumps(_replace(seed, path, marker))
        return text.replace(f'"{marker}"', _deep(depth, rnd.choice("[{"))).encode()
    if kind == 3:  # a huge or odd number in place of a value
        path = rnd.choice(_walk(seed))
        marker = "__NUM__"
        number = rnd.choice(
            [
                "9" * 5000,
                "-" + "9" * 30,
                "1e999",
                "-1e-999",
                "0.0000001",
                "18446744073709551616",
                "1E400",
                "-0",
                "00",
                "1.",
                ".5",
            ]
        )
        return json.dumps(_replace(seed, path, marker)).replace(f'"{marker}"', number).encode()
    if kind == 4:  # duplicated keys
        body = json.dumps(seed)[1:]
        dup = rnd.choice(
            [
                '"id":[1],',
                '"id":99,',
                '"method":"order.nuke",',
                '"method":7,',
                '"params":[],',
                '"params":{},',
                '"id":"dup",',
            ]
        )
        return (
            "{" + dup + body if rnd.random() < 0.5 else "{" + body[:-1] + "," + dup[:-1] + "}"
        ).encode()
    if kind == 5:  # binary garbage
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
    frame = bytearray(_encode(seed, rnd))
    for _ in range(rnd.randrange(1, 4)):
        op = rnd.randrange(5)
        if not frame:
            break
        at = rnd.randrange(len(frame) + 1)
        if op == 0:  # byte flip
            at = min(at, len(frame) - 1)
            frame[at] = rnd.randrange(256)
        elif op == 1:  # truncation
            del frame[at:]
        elif op == 2:  # junk inserted
            frame[at:at] = rnd.choice(JUNK)
        elif op == 3:  # a slice deleted
            del frame[at : at + rnd.randrange(1, 8)]
        else:  # unicode inserted into the text
            frame[at:at] = rnd.choice(["é", "日本", "\U0001f600", "\u202e"]).encode()
    return bytes(frame)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int(digits: str) -> Any:
    return int(digits) if len(digits) < 100 else float("inf")  # not an id either way


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _id_in(text: str) -> Any:
    """The well-formed id of a JSON text (standard JSON: no NaN), read with the standard
    library, not msgspec; None if there is none."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_int)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    request_id = value.get("id")
    if isinstance(request_id, bool):
        return None
    if isinstance(request_id, int) and -(2**63) <= request_id < 2**63:
        return request_id
    if isinstance(request_id, str) and len(request_id) <= protocol.MAX_ID_LENGTH:
        return request_id
    return None


def acceptable_ids(frame: bytes) -> list[Any]:
    """The ids an answer to ``frame`` may carry: the frame's id where it can be read, else
    null.  A frame with invalid UTF-8 or a lone surrogate escape may be answered either way
    (msgspec checks those only in the strings it reads, so the id of such a frame is
    sometimes readable, and the standard library accepts lone surrogates)."""
    try:
        text = frame.decode()
    except UnicodeDecodeError:
        return [None, _id_in(frame.decode(errors="replace"))]
    if _SURROGATE_ESCAPE.search(frame):
        return [None, _id_in(text)]
    return [_id_in(text)]


def harmless(frame: bytes) -> bool:
    """False for the few mutants that are valid requests which would legitimately cancel
    the guard orders (the invariant is about disconnects, not about cancel requests)."""
    try:
        request = protocol.decode_request(frame)
    except protocol.WireError:
        return True
    params = getattr(request, "params", None)
    if type(request) is protocol.CancelAllAfter:
        return params.timeout_ms == 0
    if type(request) is protocol.CancelAllOrders:
        return params.market is not None and params.market != GUARD_MARKET
    markets = [getattr(params, "market", None)]
    markets += [getattr(item, "market", None) for item in getattr(params, "orders", None) or []]
    return GUARD_MARKET not in markets


def frames(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    out: list[bytes] = []
    while len(out) < count:
        frame = mutate(rnd)
        if len(frame) < 200_000 and harmless(frame):
            out.append(frame)
    return out


class CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_lines() -> Any:
    handler = CountingHandler()
    for name in ("alatau", "picows", "websockets"):
        logging.getLogger(name).addHandler(handler)
    yield handler.records
    for name in ("alatau", "picows", "websockets"):
        logging.getLogger(name).removeHandler(handler)


def test_the_seeds_are_valid() -> None:
    for seed in SEEDS:
        protocol.decode_request(json.dumps(seed))


def test_the_regressions_get_their_error() -> None:
    """The frames that closed connections before, each with its code."""
    rig = Rig()
    session, connection = rig.login("bob")
    cases = [
        (b'{"id":1.5,"method":"ping"', "INVALID_REQUEST", None),
        (b'{"id":[1],"method":"ping"}x', "INVALID_REQUEST", None),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "INVALID_REQUEST", None),
        (
            b'{"id":3,"method":"ping","params":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "INVALID_REQUEST",
            None,
        ),
        (b'{"id":' + b"9" * 5000 + b',"method":"ping"}', "INVALID_REQUEST", None),
        (b'{"id":1e999,"method":"ping"}', "INVALID_REQUEST", None),
        (json.dumps({"id": "x" * 257, "method": "ping"}).encode(), "INVALID_REQUEST", None),
        (
            b'{"method":"order.place","params":{"qty":' + b"9" * 5000 + b'},"id":4}',
            "INVALID_PARAMS",
            4,
        ),
        (
            json.dumps(
                {"id": 5, "method": "auth.login", "params": dict(login("bob"), signature="é" * 64)},
                ensure_ascii=False,
            ).encode(),
            "INVALID_PARAMS",
            5,
        ),
        (b'{"id":6,"method":"ping\xff"}', "INVALID_REQUEST", None),
    ]
    for frame, code, request_id in cases:
        session.on_frame(frame)
        (answer,) = connection.take()
        assert (answer["id"], answer["error"]["code"]) == (request_id, code), (frame[:60], answer)
    assert not session.closed and connection.closes == []


def test_an_unexpected_exception_is_an_internal_answer(monkeypatch: Any, log_lines: list) -> None:
    rig = Rig()
    session, connection = rig.login("bob")

    def broken(self: Any, request: Any) -> None:
        raise ZeroDivisionError("a bug")

    from gateway.sessions import session as session_module

    monkeypatch.setitem(session_module._DISPATCH, protocol.Ping, (broken, True, False))
    for index in range(50):
        session.on_frame(json.dumps({"id": index, "method": "ping"}))
    answers = connection.take()
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(i, "INTERNAL") for i in range(50)]
    assert not session.closed and connection.closes == []
    assert len([r for r in log_lines if r.name == "alatau.session"]) <= 1


GUARD_PARAMS = [
    {"market": GUARD_MARKET, "side": "buy", "qty": "5", "price": price} for price in GUARD_PRICES
]


@async_test
async def test_ten_thousand_mutated_frames_through_a_session(log_lines: list) -> None:
    rig = Rig(
        Limits(
            connection_rate=1e9, connection_burst=1e9, participant_rate=1e9, participant_burst=1e9
        )
    )
    rig.venue.start()
    session, connection = rig.login("bob")
    guards = await _place_guards(session, connection)
    sent = frames(seed=20261207, count=10_000)
    mismatched = []
    for index, frame in enumerate(sent):
        session.on_frame(frame)
        answers = await _answers(connection)
        assert len(answers) == 1, (index, frame[:80], answers)
        if answers[0]["id"] not in acceptable_ids(frame):
            mismatched.append((frame[:80], answers[0]))
        assert not session.closed and connection.closes == [], (index, frame[:80])
    assert mismatched == []
    open_ids = {o.order_id for o in rig.exchange.open_orders("bob") if o.market == GUARD_MARKET}
    assert guards <= open_ids
    # the venue still executes orders
    session.on_frame(json.dumps({"id": "last", "method": "order.place", "params": GUARD_PARAMS[0]}))
    (last,) = await _answers(connection)
    assert last["ok"] is True, last
    await rig.venue.stop()
    assert len(log_lines) <= 10, [r.getMessage()[:200] for r in log_lines]


async def _place_guards(session: Any, connection: Any) -> set[int]:
    session.on_frame(
        json.dumps({"id": 0, "method": "session.cancel_on_disconnect", "params": {"enabled": True}})
    )
    assert (await _answers(connection))[0]["ok"] is True
    ids = set()
    for params in GUARD_PARAMS:
        session.on_frame(json.dumps({"id": 0, "method": "order.place", "params": params}))
        (answer,) = await _answers(connection)
        assert answer["result"]["status"] == "new", answer
        ids.add(answer["result"]["order_id"])
    return ids


async def _answers(connection: Any) -> list[dict]:
    """The answers (not stream messages) sent, once there is one: order entry is answered
    after the sequencer has run."""
    for _ in range(1000):
        answers = [m for m in connection.take() if "channel" not in m]
        if answers:
            return answers
        await asyncio.sleep(0)
    raise AssertionError("no answer")


@pytest.mark.parametrize("transport", ["picows", "websockets"])
@async_test
async def test_mutated_frames_through_a_running_server(
    transport: str, monkeypatch: Any, log_lines: list
) -> None:
    monkeypatch.setenv("ALATAU_TRANSPORT", transport)
    async with running_venue() as v:
        client = await v.login("bob")
        assert await client.ok("session.cancel_on_disconnect", {"enabled": True})
        guards = {(await client.ok("order.place", p))["order_id"] for p in GUARD_PARAMS}
        sent = frames(seed=7, count=500 if transport == "picows" else 200)
        for index, frame in enumerate(sent):
            if index % 50 == 0:  # a binary frame now and then
                answer = await client.raw(frame)
                assert answer["error"]["code"] == "INVALID_REQUEST"
            try:
                text = frame.decode()
            except UnicodeDecodeError:
                if transport == "websockets":
                    continue  # websockets closes such a text frame with 1007, as RFC 6455 says
                text = None
            if text is None:
                await client.ws.send(frame, text=True)  # invalid UTF-8 in a text frame
                answer = await asyncio.wait_for(client.unmatched.get(), 10)
            else:
                answer = await client.raw(text)
            assert answer["id"] in acceptable_ids(frame), (frame[:80], answer)
        assert not client.closed.done()
        await client.ping()
        open_ids = {o.order_id for o in v.exchange.open_orders("bob")}
        assert guards <= open_ids
        session = next(iter(v.gateway.sessions))
        assert not session.closed
    assert len(log_lines) <= 10, [r.getMessage()[:200] for r in log_lines]


def test_the_log_limiter_writes_one_line_per_interval_with_a_count(log_lines: list) -> None:
    from gateway.sessions.ratelimit import LogLimiter

    now = [0.0]
    limiter = LogLimiter(logging.getLogger("alatau.test"), 10.0, clock=lambda: now[0])
    for _ in range(1000):
        limiter.log(logging.WARNING, "bad thing from %s", "x")
    now[0] = 10.0
    limiter.log(logging.WARNING, "bad thing from %s", "y")
    assert [r.getMessage() for r in log_lines] == [
        "bad thing from x",
        "bad thing from y (and 999 more like it not logged in the last 10 s)",
    ]
