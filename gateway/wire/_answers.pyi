from engine.reports import CommandRejected, FillReport, OrderReport, Report
from gateway.wire.protocol import RequestId

def order_answer(
    request_id: RequestId,
    report: OrderReport,
    fills: list[FillReport],
    after: FillReport | None,
    quote_scale: int,
    base_scale: int,
) -> bytes: ...
def placed_reports(
    reports: list[Report], participant_id: str | None
) -> tuple[OrderReport | None, OrderReport | None, list[FillReport], FillReport | None]: ...
def changed_reports(
    reports: list[Report], participant_id: str | None
) -> tuple[
    CommandRejected | None, int | None, OrderReport | None, list[FillReport], FillReport | None
]: ...
