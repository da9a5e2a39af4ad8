"""The websocket transport benchmark echoes every request, with matching ids, on both servers.

No timing is asserted: this only keeps ``benchmarks/transport_echo.py`` working (server and
client processes, pipelining, the correctness checks) with a tiny message count.  Besides the
two measured servers it runs their transport variants (picows on uvloop's own transports,
websockets on aiofastnet's).
"""

import msgspec
import pytest

from benchmarks import transport_echo as te

COUNT = 2_000
CONNECTIONS = 2


@pytest.fixture(scope="module")
def report() -> dict:
    return te.run_benchmark(
        servers=te.VARIANTS,
        count=COUNT,
        connections=CONNECTIONS,
        window=16,
        time_limit=60.0,
        runs=1,
        warmup=200,
    )


@pytest.mark.parametrize("server", te.VARIANTS)
def test_every_message_echoed_with_matching_ids(report: dict, server: str) -> None:
    (run,) = report["results"][server]["runs"]
    assert run["sent"] == COUNT
    assert run["received"] == COUNT
    assert run["received_total"] == run["sent_total"] == COUNT + 200
    assert run["mismatched"] == 0
    assert run["not_ok"] == 0
    assert run["server"]["requests"] == run["sent_total"]
    assert run["server"]["rejects"] == 0
    assert run["server"]["connections"] == CONNECTIONS
    assert run["pongs"] == CONNECTIONS
    assert run["close_codes_rcvd"] == {"1000": CONNECTIONS}
    assert all(run["checks"].values()), run["checks"]
    assert report["results"][server]["ok"]


def test_report_has_both_servers_and_their_ratio(report: dict) -> None:
    assert report["ok"]
    assert set(te.SERVERS) <= set(report["results"])
    assert report["ratio_picows_over_websockets"] is not None
    text = te.format_report(report)
    assert "picows / websockets" in text
    assert "FAILED" not in text
    transports = {k: r["runs"][0]["server"]["transport"] for k, r in report["results"].items()}
    assert transports["picows-uvloop"].startswith("uvloop.")
    assert transports["websockets"].startswith("uvloop.")


def test_app_acknowledges_and_rejects() -> None:
    app = te.EchoApp()
    ack = msgspec.json.decode(app.handle(te.request_bytes(42)), type=te.OrderAck)
    assert (ack.id, ack.ok, ack.result.status) == (42, True, "new")
    assert msgspec.json.decode(app.handle(b'{"id": 1'), type=te.OrderAck).ok is False
    bad_utf8 = te.request_bytes(7).replace(b"BTC-KZT", b"BTC-\xff")
    assert msgspec.json.decode(app.handle(bad_utf8), type=te.OrderAck).ok is False
    assert app.rejects == 2
