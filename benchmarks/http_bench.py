"""``GET /api/v1/depth`` requests/s and latency, for choosing the HTTP server (issue 14).

    python -m benchmarks.http_bench --server aiohttp --requests 20000 --connections 8
    python -m benchmarks.http_bench --server uvicorn ...

The server runs in this process on uvloop, the way ``alatau serve`` runs it: the demo venue
(in memory) with a book of ``--levels`` levels a side, ``HttpApi`` in front of it, and the
candidate server on 127.0.0.1, port 0.  The load generator is a second process (so each gets
a core): ``--connections`` keep-alive connections, each sending one request and reading the
answer before the next, until ``--requests`` answers came back; it prints requests/s and
the latency percentiles.  Loopback only, bounded.

Candidates: ``aiohttp`` (``gateway.transport.http_server``, the low-level ``web.Server``) and
``uvicorn`` (a plain ASGI callable under ``uvicorn.Server.serve()`` on the same loop, httptools
parser, its signal capture switched off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from engine.commands import PlaceOrder
from engine.types import OrderType, Side, TimeInForce
from gateway.app.serve import ServeOptions, build_exchange, fund_demo_participants
from gateway.hosts.local import LocalHost
from gateway.sequencer.venue import Venue
from gateway.sessions.http import HttpApi, HttpRequest
from gateway.sessions.session import Gateway, Limits

PATH = "/api/v1/depth?market=BTC-KZT&limit=100"


def venue_with_book(levels: int) -> Venue:
    exchange = build_exchange(ServeOptions())
    now = int(time.time() * 1000)
    fund_demo_participants(exchange, now)
    venue = Venue(LocalHost(exchange))
    for i in range(levels):
        for side, price in (
            (Side.SELL, 4_510_000_000 + i * 100),
            (Side.BUY, 4_490_000_000 - i * 100),
        ):
            reports = exchange.execute(
                PlaceOrder(
                    ts=now,
                    participant_id="mm1",
                    market="BTC-KZT",
                    side=side,
                    qty=1_000_000,
                    order_type=OrderType.LIMIT,
                    price=price,
                    tif=TimeInForce.GTC,
                )
            )
            venue.publish(reports)
    return venue


async def serve_uvicorn(
    api: HttpApi, started: asyncio.Future[tuple[str, int]], stop: asyncio.Event
) -> None:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        client = scope.get("client")
        response = api.handle(
            HttpRequest(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                body=body,
                remote=client[0] if client else None,
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    *((k.encode(), v.encode()) for k, v in response.headers),
                    (b"content-length", str(len(response.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the process's signals stay ours
            yield

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    server = Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    started.set_result(("127.0.0.1", port))
    await stop.wait()
    server.should_exit = True
    await task


async def run_server(kind: str, levels: int, requests: int, connections: int) -> dict[str, Any]:
    venue = venue_with_book(levels)
    limits = Limits(connection_rate=1e9, connection_burst=1e9)  # measure the server, not the limit
    api = HttpApi(Gateway(venue, admin_key=None, limits=limits))
    started: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    if kind == "aiohttp":
        from gateway.transport.http_server import run_http_server

        task = asyncio.create_task(run_http_server(api, "127.0.0.1", 0, started=started, stop=stop))
    else:
        task = asyncio.create_task(serve_uvicorn(api, started, stop))
    _host, port = await started
    cpu0 = time.process_time()
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.http_bench",
        "client",
        "--port",
        str(port),
        "--requests",
        str(requests),
        "--connections",
        str(connections),
        stdout=subprocess.PIPE,
    )
    out, _ = await client.communicate()
    cpu = time.process_time() - cpu0
    stop.set()
    await task
    result: dict[str, Any] = json.loads(out)
    result.update(server=kind, server_cpu_us_per_request=round(cpu / requests * 1e6, 1))
    return result


async def client(port: int, requests: int, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    remaining = requests
    first = b""

    async def one_connection() -> None:
        nonlocal remaining, first
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"bad answer: {head!r}")
            first = first or body
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "requests": len(latencies),
        "connections": connections,
        "requests_per_s": round(len(latencies) / elapsed),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3),
        "body_bytes": len(first),
    }


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="server", choices=("server", "client"))
    parser.add_argument("--server", choices=("aiohttp", "uvicorn"), default="aiohttp")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--levels", type=int, default=200, help="book levels a side")
    args = parser.parse_args()
    if args.mode == "client":
        result = uvloop.run(client(args.port, args.requests, args.connections))
    else:
        result = uvloop.run(run_server(args.server, args.levels, args.requests, args.connections))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
