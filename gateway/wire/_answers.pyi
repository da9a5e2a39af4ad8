from engine.reports import FillReport, OrderReport
from gateway.wire.protocol import RequestId

def order_answer(
    request_id: RequestId,
    report: OrderReport,
    fills: list[FillReport],
    after: FillReport | None,
    quote_scale: int,
    base_scale: int,
) -> bytes: ...
