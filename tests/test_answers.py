"""The compiled order answer (``gateway.wire._answers.order_answer``) against the general
path it replaces on the order path, ``protocol.ok(request_id, order_result(...))``: the same
bytes for any reports, including the values it hands back to msgspec and ``format_units``
(strings to escape, integers past 64 bits, negative amounts, scale 0).  And the compiled
picks of which reports an answer is about (``placed_reports``, ``changed_reports``) against
the session's loops they replace, on randomized report lists."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.reports import Audit, BalanceReport, CommandRejected, FillReport, OrderReport, Report
from gateway.wire import protocol
from gateway.wire._answers import changed_reports, order_answer, placed_reports
from gateway.wire.views import order_result
from tests.kit.reports import fill_report, order_report

# Mostly what the venue sends, sometimes what needs the slow path.
texts = st.one_of(
    st.sampled_from(["USDT-KZT", "BTC-KZT", "buy", "sell", "new", "filled", "mm.1:a-b_c"]),
    st.text(max_size=12),
    st.text(alphabet='"\\\n\t\x00\x7f\u00e9\u20b8\U0001f600ab', max_size=8),
)
maybe_texts = st.none() | texts
amounts = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=-(2**70), max_value=2**70),
)
ints = st.one_of(
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=-(2**80), max_value=2**80),
)
request_ids = st.one_of(st.none(), ints, texts)


@st.composite
def order_reports(draw: Any) -> OrderReport:
    return OrderReport(
        ts=draw(ints),
        participant_id=draw(texts),
        market=draw(texts),
        order_id=draw(st.none() | ints),
        client_order_id=draw(maybe_texts),
        side=draw(texts),
        order_type=draw(texts),
        price=draw(st.none() | amounts),
        qty=draw(amounts),
        filled_qty=draw(amounts),
        remaining_qty=draw(amounts),
        status=draw(texts),
        reason=draw(maybe_texts),
        message=draw(maybe_texts),
    )


@st.composite
def fill_reports(draw: Any) -> FillReport:
    return FillReport(
        ts=draw(ints),
        participant_id=draw(texts),
        market=draw(texts),
        order_id=draw(ints),
        client_order_id=draw(maybe_texts),
        side=draw(texts),
        trade_id=draw(ints),
        fill_price=draw(amounts),
        fill_qty=draw(amounts),
        fee=draw(amounts),
        fee_asset=draw(texts),
        liquidity=draw(texts),
        filled_qty=draw(amounts),
        remaining_qty=draw(amounts),
        status=draw(texts),
    )


def general(
    request_id: Any,
    report: OrderReport,
    fills: list[FillReport],
    after: FillReport | None,
    quote_scale: int,
    base_scale: int,
) -> bytes:
    market: Any = SimpleNamespace(quote_scale=quote_scale, base_scale=base_scale)
    return protocol.ok(request_id, order_result(report, market, fills, after))


@settings(max_examples=400)
@given(
    request_id=request_ids,
    report=order_reports(),
    fills=st.lists(fill_reports(), max_size=3),
    after_last=st.booleans(),
    quote_scale=st.integers(min_value=0, max_value=18),
    base_scale=st.integers(min_value=0, max_value=18),
)
def test_the_compiled_answer_is_the_general_paths_bytes(
    request_id: Any,
    report: OrderReport,
    fills: list[FillReport],
    after_last: bool,
    quote_scale: int,
    base_scale: int,
) -> None:
    after = fills[-1] if fills and after_last else None
    expected = general(request_id, report, fills, after, quote_scale, base_scale)
    assert order_answer(request_id, report, fills, after, quote_scale, base_scale) == expected


def test_a_crossing_order_answers_its_fills_and_state_after_them() -> None:
    """A limit buy that took part of a resting sell and rests: the price and quantity are the
    order's, the filled and remaining quantities and status the fill's, as decimal text."""
    report = order_report(client_order_id="c-1")
    fill = fill_report(client_order_id="c-1")
    answer = msgspec.json.decode(order_answer("req-1", report, [fill], fill, 2, 8))
    assert answer["id"] == "req-1" and answer["ok"] is True
    result = answer["result"]
    assert (result["price"], result["qty"]) == ("45000000.00", "0.00150000")
    assert (result["filled_qty"], result["remaining_qty"]) == ("0.00050000", "0.00100000")
    assert (result["status"], result["ts"]) == ("partially_filled", 1_700_000_000_001)
    assert "reason" not in result and "message" not in result
    assert [f["fill_price"] for f in result["fills"]] == ["44999999.00"]
    assert result["fills"][0]["fee"] == "22.50"


def test_other_report_types_are_refused_not_misread() -> None:
    """The answer reads report fields from their slots: anything but the report types it
    was built for is a TypeError, never a read of the wrong memory."""
    fill = fill_report()
    with pytest.raises(TypeError):
        order_answer(1, fill, [], None, 2, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        order_answer(1, SimpleNamespace(), [], None, 2, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        order_answer(1, order_report(), [order_report()], None, 2, 2)  # type: ignore[list-item]


def test_an_answer_larger_than_the_stack_buffer_is_whole() -> None:
    """An order that took many resting orders answers every fill: the writer moves to the
    heap past its stack buffer, and the bytes are still the general path's."""
    report = order_report(client_order_id="c" * 64, message="m" * 500)
    fills = [fill_report(trade_id=t, client_order_id="c" * 64) for t in range(1, 41)]
    answer = order_answer(7, report, fills, fills[-1], 2, 8)
    assert len(answer) > 4 * 2048  # grown on the heap three times
    assert answer == general(7, report, fills, fills[-1], 2, 8)


# -- which reports an answer is about ----------------------------------------------------


def loop_placed(reports: list[Report], participant_id: str | None) -> tuple[Any, ...]:
    """``Session._placed``'s loop before ``placed_reports`` replaced it."""
    mine = None
    last = None
    fills = []
    after = None
    for report in reports:
        if type(report) is OrderReport and report.participant_id == participant_id:
            if mine is None and report.status in ("new", "rejected"):
                mine = report
            if mine is not None and report.order_id == mine.order_id:
                last = report
                after = None
        elif type(report) is FillReport and mine is not None and report.order_id == mine.order_id:
            fills.append(report)
            after = report
    return mine, last, fills, after


def loop_changed(reports: list[Report], participant_id: str | None) -> tuple[Any, ...]:
    """``Session._changed``'s loops before ``changed_reports`` replaced them."""
    for report in reports:
        if type(report) is CommandRejected:
            return report, None, None, [], None
    target = None
    last = None
    fills = []
    after = None
    for report in reports:
        if type(report) is OrderReport and report.participant_id == participant_id:
            target = target or report.order_id
            if report.order_id == target:
                last = report
                after = None
        elif type(report) is FillReport and target is not None and report.order_id == target:
            fills.append(report)
            after = report
    return None, target, last, fills, after


# Few participants, order ids and statuses, so that reports are often about the same order.
who = st.sampled_from(["alice", "bob", "alice"])
small_ids = st.sampled_from([None, 1, 2, 3])
statuses = st.sampled_from(["new", "rejected", "partially_filled", "filled", "canceled"])


@st.composite
def command_reports(draw: Any) -> list[Report]:
    reports: list[Report] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 4))
        participant_id = draw(who)
        if kind <= 1:
            reports.append(
                order_report(
                    participant_id=participant_id,
                    order_id=draw(small_ids),
                    status=draw(statuses),
                )
            )
        elif kind == 2:
            reports.append(
                fill_report(participant_id=participant_id, order_id=draw(small_ids.filter(bool)))
            )
        elif kind == 3:
            reports.append(
                BalanceReport(
                    participant_id=participant_id, asset="KZT", total=1, available=1, held=0
                )
            )
        else:
            reports.append(
                Audit(
                    ts=1,
                    participant_id=participant_id,
                    market="BTC-KZT",
                    order_id=draw(small_ids),
                    client_order_id=None,
                    action="place",
                    decision="accept",
                    check="all",
                    code=None,
                )
            )
    if draw(st.integers(0, 5)) == 0:
        reports.insert(
            draw(st.integers(0, len(reports))),
            CommandRejected(
                ts=1, participant_id=draw(who), command="cancel", code="UNKNOWN_ORDER", message="x"
            ),
        )
    return reports


def same_picks(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The same report objects (not only equal ones) in the same places."""
    return len(a) == len(b) and all(
        (x is y) if not isinstance(x, list) else [id(r) for r in x] == [id(r) for r in y]
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=600)
@given(command_reports(), who | st.none())
def test_placed_reports_picks_what_the_session_loop_picked(reports, participant_id):
    assert same_picks(placed_reports(reports, participant_id), loop_placed(reports, participant_id))


@settings(max_examples=600)
@given(command_reports(), who | st.none())
def test_changed_reports_picks_what_the_session_loops_picked(reports, participant_id):
    picked = changed_reports(reports, participant_id)
    assert picked[1] == loop_changed(reports, participant_id)[1]  # the target id
    assert same_picks(picked, loop_changed(reports, participant_id))


def test_a_place_answer_is_about_the_new_order_not_an_older_one_swept_first() -> None:
    """A licence sweep reports the participant's older order first: the answer is about the
    new one, with its fill after its last report."""
    swept = order_report(order_id=1, status="canceled")
    new = order_report(order_id=2, status="new")
    fill = fill_report(order_id=2)
    other = fill_report(order_id=1)
    mine, last, fills, after = placed_reports([swept, new, other, fill], "alice")
    assert mine is new and last is new and fills == [fill] and after is fill
