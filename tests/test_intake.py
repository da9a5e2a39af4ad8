"""The plain-order intake (``gateway.wire._intake.plain_order``) against the general path.

A session reads a plain ``order.place`` or ``order.cancel`` in one pass over its frame;
everything else goes through ``protocol.decode_request`` and the request's handler.  What
the one-pass reader accepts must mean exactly what the general path makes of the same
frame: the same command and the same request id.  Whatever the general path refuses, it
must decline.  The frames here are drawn at random around the valid ones: wrong types,
unknown keys and markets, numerals just past the fast rules, duplicate keys, escapes,
non-ASCII, whitespace, trailing bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.markets import load_markets
from gateway.app.serve import ServeOptions, build_exchange
from gateway.hosts.local import LocalHost
from gateway.sequencer.venue import Venue
from gateway.sessions.session import Gateway, Limits, Session
from gateway.wire import protocol
from gateway.wire._intake import CANCEL, PLACE, plain_order
from gateway.wire.protocol import WireError
from tests.kit.connections import RecordingConnection

TS = 1_790_000_000_000
MARKETS = load_markets()
UNLIMITED = Limits(
    connection_rate=1e12,
    connection_burst=1e12,
    participant_rate=1e12,
    participant_burst=1e12,
)


class RecordingVenue(Venue):
    """A venue that keeps what sessions submit instead of running it."""

    def submit(self, build: Any, done: Any = None) -> None:
        self.submitted.append((build, done))


def _session(
    participant_id: str | None = "mm1",
) -> tuple[Session, RecordingVenue, RecordingConnection]:
    venue = RecordingVenue(LocalHost(build_exchange(ServeOptions())))
    venue.submitted = []
    sink = RecordingConnection()
    session = Gateway(venue, admin_key=None, limits=UNLIMITED).open_session(sink)
    assert session is not None
    session.participant_id = participant_id
    return session, venue, sink


SESSION, VENUE, _ = _session()
REFUSED = "refused"


def general(frame: bytes | str) -> Any:
    """(type of id, id, command) as the general path reads ``frame``, or ``REFUSED``."""
    try:
        request = protocol.decode_request(frame)
    except WireError:
        return REFUSED
    handler = {protocol.Place: SESSION._place, protocol.Cancel: SESSION._cancel}.get(type(request))
    if handler is None:
        return "another method"
    VENUE.submitted.clear()
    try:
        handler(request)
    except WireError:
        return REFUSED
    ((build, _done),) = VENUE.submitted
    return type(request.id), request.id, build(TS)


def one_pass(frame: bytes | str) -> Any:
    """(type of id, id, command) as ``plain_order`` reads ``frame``, or None if declined."""
    plain = plain_order(frame, MARKETS)
    if plain is None:
        return None
    VENUE.submitted.clear()
    SESSION._submit_plain(plain)
    ((build, _done),) = VENUE.submitted
    return type(plain[1]), plain[1], build(TS)


# -- frames ------------------------------------------------------------------------------

NUMERALS = st.one_of(
    st.from_regex(r"[0-9]{1,8}(\.[0-9]{1,9})?", fullmatch=True),
    st.sampled_from(
        [
            "0",
            "007",
            "1.",
            ".5",
            "1.2.3",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "\u0661",
            "1_0",
            "",
            "9" * 16,
            "9" * 19,
            "0" * 30 + "1",
            "1" + "0" * 40,
            "0.000000001",
            "45000000.00",
            "NaN",
        ]
    ),
    st.text(max_size=4),
)
VALID_NUMERALS = st.from_regex(r"[1-9][0-9]{0,4}(\.[0-9]{1,2})?", fullmatch=True)
CLIENT_ORDER_IDS = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True),
    st.sampled_from(["", "x" * 65, "a b", "a/b", "\u00e4", 'a"b', "a\\b", "a\tb"]),
)
ODD = st.one_of(  # containers made fresh: a request is changed in place
    st.sampled_from([None, True, False, 0, 1, 1.5, -1, ""]),
    st.builds(list),
    st.builds(dict),
    st.builds(lambda: [1]),
)
FIELDS: dict[str, Any] = {
    "market": st.one_of(
        st.sampled_from(["BTC-KZT", "USDT-KZT", "ETH-KZT", "usdt-kzt", "NOPE", "", "X" * 33]),
        ODD,
    ),
    "side": st.one_of(st.sampled_from(["buy", "sell", "BUY", "hold"]), ODD),
    "qty": st.one_of(NUMERALS, ODD),
    "price": st.one_of(NUMERALS, ODD),
    "type": st.one_of(st.sampled_from(["limit", "market", "LIMIT"]), ODD),
    "tif": st.one_of(st.sampled_from(["GTC", "IOC", "FOK", "gtc", "DAY"]), ODD),
    "post_only": ODD,
    "client_order_id": st.one_of(CLIENT_ORDER_IDS, ODD),
    "stp": st.one_of(
        st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both", "none"]), ODD
    ),
    "order_id": st.one_of(
        st.integers(-5, 2**62 + 5),
        st.sampled_from([0, 1, 2**62, 2**62 + 1, 10**17, 10**18, 10**19, 2**63]),
        ODD,
    ),
    "extra": ODD,
}
REQUEST_IDS = st.one_of(
    st.none(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, -1, 10**17, 10**18, -(10**18), 2**63 - 1, -(2**63), 2**63]),
    st.text(max_size=8),
    st.sampled_from(["", "x" * 256, "x" * 257, 'a"b', "\u00e9"]),
    ODD,
)
METHODS = st.sampled_from(
    ["order.place", "order.place", "order.cancel", "order.cancel", "order.amend", "ping", "x"]
)


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A plain order.place or order.cancel the general path accepts."""
    market = draw(st.sampled_from(["BTC-KZT", "USDT-KZT", "ETH-KZT"]))
    if draw(st.booleans()):
        params: dict[str, Any] = {
            "market": market,
            "side": draw(st.sampled_from(["buy", "sell"])),
            "qty": draw(VALID_NUMERALS),
        }
        if draw(st.booleans()):
            params["type"] = "market"
            if draw(st.booleans()):
                params["tif"] = draw(st.sampled_from(["IOC", "FOK"]))
        else:
            if draw(st.booleans()):
                params["type"] = "limit"
            params["price"] = draw(VALID_NUMERALS)
            if draw(st.booleans()):
                params["tif"] = draw(st.sampled_from(["GTC", "IOC", "FOK", None]))
            if draw(st.booleans()):
                params["post_only"] = draw(st.booleans())
        if draw(st.booleans()):
            params["client_order_id"] = draw(
                st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True)
            )
        if draw(st.booleans()):
            params["stp"] = draw(st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both"]))
        method = "order.place"
    else:
        params = {"market": market}
        if draw(st.booleans()):
            params["order_id"] = draw(st.integers(1, 10**17))
        else:
            params["client_order_id"] = draw(
                st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True)
            )
        method = "order.cancel"
    request: dict[str, Any] = {"method": method, "params": params}
    if draw(st.booleans()):
        request["id"] = draw(
            st.one_of(
                st.integers(-(10**17), 10**17),
                st.from_regex(r"[ !#-\[\]-~]{0,20}", fullmatch=True),  # no escapes
                st.none(),
            )
        )
    order = draw(st.permutations(list(request)))
    return {key: request[key] for key in order}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A plain request, then up to three changes to it: a params field set to any value
    (an unknown key among them) or taken out, another method, id or params, a key more
    or less in the envelope.  About a third stay plain."""
    request = draw(valid_requests())
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.integers(0, 6))
        params = request.get("params")
        if change <= 2 and isinstance(params, dict):
            key = draw(st.sampled_from(sorted(FIELDS)))
            if change == 2 and key in params:
                del params[key]
            else:
                params[key] = draw(FIELDS[key])
        elif change == 3:
            request["method"] = draw(st.one_of(METHODS, ODD))
        elif change == 4:
            request["id"] = draw(REQUEST_IDS)
        elif change == 5:
            request[draw(st.sampled_from(["params", "extra"]))] = draw(ODD)
        else:
            request.pop(draw(st.sampled_from(["id", "method", "params"])), None)
    return request


SEPARATORS = st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t"), ("\r\n,", ":  ")])


@st.composite
def frames(
    draw: st.DrawFn, objects: st.SearchStrategy[dict[str, Any]], damaged: bool = True
) -> bytes | str:
    """``objects`` written as JSON in some layout, as bytes or as text, at times damaged."""
    text = json.dumps(draw(objects), separators=draw(SEPARATORS), ensure_ascii=draw(st.booleans()))
    text = draw(st.sampled_from(["", " ", "\n\t"])) + text + draw(st.sampled_from(["", " \r\n"]))
    mutation = draw(st.integers(0, 12)) if damaged else 0
    if mutation == 1:
        text += draw(st.sampled_from(["x", "}", ",", "{}", "\x00"]))
    elif mutation == 2:
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == 3:  # a key twice
        text = text.replace("{", '{"id":1,', 1)
    elif mutation == 4:
        text = text.replace('"market"', '"market":"BTC-KZT","market"', 1)
    elif mutation == 5:  # an integer as a fraction or in exponent form
        text = text.replace(":1", ":1.0", 1).replace(": 1", ": 1e0", 1)
    elif mutation == 6:
        text = text.replace('"', "'", 1)
    elif mutation == 7:
        text = text.replace("}", ",}", 1)
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    return text


# -- the properties ----------------------------------------------------------------------


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(requests()))
def test_what_the_one_pass_reader_accepts_the_general_path_reads_the_same(frame):
    read = one_pass(frame)
    if read is not None:
        assert general(frame) == read


@settings(max_examples=800, deadline=None)
@given(frames(valid_requests(), damaged=False))
def test_plain_orders_are_read_in_one_pass_as_the_general_path_reads_them(frame):
    expected = general(frame)
    assert expected != REFUSED
    if isinstance(frame, str) and not frame.isascii():
        assert one_pass(frame) is None  # the one-pass reader takes ASCII text only
    else:
        assert one_pass(frame) == expected


def test_the_benchmark_flow_s_frames_take_the_one_pass_path():
    place = b'{"id":17,"method":"order.place","params":{"market":"USDT-KZT","side":"buy",'
    place += b'"price":"475.12","qty":"10.5"}}'
    cancel = b'{"id":18,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":9}}'
    placed = plain_order(place, MARKETS)
    assert placed is not None and placed[:2] == (PLACE, 17)
    assert placed[4] == 10_500_000 and placed[6] == 47_512  # USDT: 6 decimals; KZT: 2
    canceled = plain_order(cancel, MARKETS)
    assert canceled is not None and canceled[:2] == (CANCEL, 18)
    assert one_pass(place) == general(place)
    assert one_pass(cancel) == general(cancel)


@pytest.mark.parametrize(
    "frame",
    [
        # Each is one step past what the one-pass reader takes; the general path decides.
        '{"id":1,"method":"order.place","params":{"market":"USDT-KZT","side":"buy","qty":"1.0000001","price":"1"}}',
        '{"id":1,"method":"order.place","params":{"market":"USDT-KZT","side":"buy","qty":"0000000000001","price":"1"}}',
        '{"id":1,"method":"order.place","params":{"market":"USDT-KZT","side":"buy","qty":"1","price":"1","type":"market"}}',
        '{"id":1,"method":"order.place","params":{"market":"USDT-KZT","side":"buy","qty":"1"}}',
        '{"id":1,"method":"order.place","params":{"market":"USDT-KZT","side":"buy","qty":"1","price":"1","order_id":3}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3,"client_order_id":"a"}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT"}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":0}}',
        '{"id":1,"method":"order.cancel","params":{"market":"NOPE-KZT","order_id":3}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3},"id":2}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3}} x',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3.0}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT\\u002dKZT","order_id":3}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":1234567890123456789}}',
        '{"id":12345678901234567890,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3}}',
        '{"id":1,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":3}',
    ],
)
def test_near_misses_go_the_general_way(frame):
    assert plain_order(frame, MARKETS) is None
    assert plain_order(frame.encode(), MARKETS) is None


# -- through the session -----------------------------------------------------------------


def test_a_plain_order_needs_a_login_like_any_other():
    async def scenario() -> list[dict[str, Any]]:
        session, venue, sink = _session(participant_id=None)
        session.on_frame(
            b'{"id":5,"method":"order.cancel","params":{"market":"USDT-KZT","order_id":9}}'
        )
        assert venue.submitted == []
        return sink.out

    (answer,) = asyncio.run(scenario())
    assert answer["id"] == 5 and answer["error"]["code"] == "UNAUTHENTICATED"


def test_a_plain_order_goes_through_on_frame_with_its_request_id():
    async def scenario() -> None:
        session, venue, sink = _session()
        frame = b'{"id":"q-1","method":"order.place","params":{"market":"USDT-KZT",'
        frame += b'"side":"sell","price":"480.00","qty":"2"}}'
        session.on_frame(frame)
        ((build, done),) = venue.submitted
        assert build(TS) == general(frame)[2]
        done([])  # no report of the order: answered INTERNAL, with the request's id
        assert sink.out[-1]["id"] == "q-1" and sink.out[-1]["error"]["code"] == "INTERNAL"

    asyncio.run(scenario())
