"""Websocket transport benchmark: echo of order-sized JSON, ``websockets`` against ``picows``.

Run it as ``python -m benchmarks.transport_echo`` (``--help`` for the options).

The gateway's websocket transport is chosen by measurement.  Both candidate servers run the
same application code, on uvloop:

``websockets``
    ``websockets.asyncio.server.serve`` with a ``recv(decode=False)`` / ``send(text=True)``
    loop per connection (library defaults otherwise).
``picows``
    ``picows.ws_create_server`` with a ``WSListener`` subclass answering in ``on_ws_frame``.

``picows`` is measured as picows sets itself up: picows 2.3 depends on aiofastnet and, with
it installed, runs its sockets on aiofastnet's transports (over the uvloop loop).  Two
variants, measured only when named in ``--servers``, separate the transport from the
library: ``picows-uvloop`` (``use_aiofastnet=False``: uvloop's own transports) and
``websockets-aiofastnet`` (the server loop patched with ``aiofastnet.patch_loop()``).  The
report names each server's socket transport class.

The application code decodes each text frame, an ``order.place`` request (181 bytes), with
one reusable typed ``msgspec.json.Decoder`` (``OrderPlace``), and answers with a small
acknowledgement (66 bytes) encoded by one reusable ``msgspec.json.Encoder``.

Each measurement starts a fresh server process (127.0.0.1, port 0) and a separate load-client
process using the ``websockets`` client on uvloop.  The client opens ``--connections``
connections, each keeping ``--window`` requests in flight (pipelining), until ``--count``
requests have been answered or ``--time-limit`` seconds have passed.  It does not offer
permessage-deflate unless ``--deflate`` is given (picows does not implement it, so only
the ``websockets`` server would compress).  A warm-up of ``--warmup`` requests precedes the
measured phase on the same connections.

The client is the ``websockets`` library, but it does not ``await ws.send()`` per request:
whenever its window has room it frames every request the window allows with the library's
protocol (``ws.protocol.send_text``) and writes them with one ``transport.writelines``.
Otherwise each request costs the client a ``send`` system call and a coroutine, and on a
2-core machine the client, not the server, sets the pace (about 24k msgs/s against either
server here).  ``--per-message-send`` measures that way instead.  ``--pin`` pins the server
to CPU 0 and the client to CPU 1 (it made no difference on an idle machine and made things
much worse on a busy one).

Reported per server, as medians over ``--runs`` runs (the servers alternate in order run by
run, so that a noisy neighbour hurts them alike):

* messages/s: round trips completed per second in the measured phase;
* round-trip latency p50/p99 (ms) at saturation: from just before ``send`` to the decoded
  response, so with a full window it includes the queueing the window causes;
* CPU use of the server and client processes over the measured phase, and the server's
  CPU time per message.  A client at ~100% means the figure is client-bound: the server's
  CPU per message is then the better guide to its capacity.

``--rate R`` adds an open-loop mode: R requests/s in total, spread over the connections, sent
on a schedule (uvloop's timers tick in milliseconds, so sends come in 1 ms bursts); latency is
measured from each actual send.

Correctness is checked in every run: every response must carry the id of a request sent on
that connection (responses are also expected in order; ``out_of_order`` counts exceptions),
``ok`` must be true, received == sent, the server must have decoded as many requests as were
sent, a ping on each connection must be answered (after the load) and a close (1000) must
be echoed.  A run that fails a check makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from array import array
from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec

from benchmarks import common
from benchmarks.common import percentile

SERVERS = ("websockets", "picows")
"""The two servers measured by default (the ratio is picows / websockets)."""
VARIANTS = (*SERVERS, "picows-uvloop", "websockets-aiofastnet")
"""Every server ``--servers`` accepts.  ``picows`` is picows' default: with aiofastnet
installed (a dependency of picows 2.3) its sockets run on aiofastnet's transports over the
uvloop loop.  ``picows-uvloop`` passes ``use_aiofastnet=False`` (uvloop's own transports);
``websockets-aiofastnet`` patches the server's loop with ``aiofastnet.patch_loop()``."""
DEFAULT_COUNT = 200_000
DEFAULT_CONNECTIONS = 4
DEFAULT_WINDOW = 64
DEFAULT_TIME_LIMIT = 30.0
DEFAULT_RUNS = 3
DEFAULT_WARMUP = 4_000
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
"""Seconds a server or client process may take to start (imports, bind, connect)."""
DRAIN_TIMEOUT = 10.0
"""Seconds the client waits for the last in-flight responses after it stops sending."""
ID_BASE = 1_000_000_000
"""Request ids are ``(connection + 1) * ID_BASE + sequence``: unique across connections."""


# -- the application messages -----------------------------------------------------------------


class OrderParams(msgspec.Struct):
    market: str
    side: str
    type: str
    price: str
    qty: str
    tif: str
    client_order_id: str


class OrderPlace(msgspec.Struct):
    id: int
    method: str
    params: OrderParams


class OrderResult(msgspec.Struct):
    order_id: int
    status: str


class OrderAck(msgspec.Struct):
    id: int
    ok: bool
    result: OrderResult


REQUEST_TEMPLATE = (
    b'{"id":%d,"method":"order.place","params":{"market":"BTC-KZT","side":"buy",'
    b'"type":"limit","price":"45000000.00","qty":"0.00150","tif":"GTC",'
    b'"client_order_id":"c-%d"}}'
)
"""An ``order.place`` request; ``REQUEST_TEMPLATE % (id, id)`` is one (about 170 bytes)."""


def request_bytes(msg_id: int) -> bytes:
    """The UTF-8 JSON of the ``order.place`` request with this id."""
    return REQUEST_TEMPLATE % (msg_id, msg_id)


class EchoApp:
    """The application side, identical for both transports: decode, acknowledge, encode."""

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(OrderPlace).decode
        self._encode = msgspec.json.Encoder().encode
        self.requests = 0
        self.rejects = 0
        self.connections = 0
        self.write_pauses = 0
        self.close_codes: dict[str, int] = {}
        """Close codes received from clients (picows only: ``websockets`` answers itself)."""
        self.transport = ""
        """The class of the server's socket transport (uvloop's or aiofastnet's)."""

    def handle(self, data: bytes | memoryview) -> bytes:
        """The response to one request (a rejection with id -1 if it does not decode)."""
        self.requests += 1
        try:
            request = self._decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            # Neither transport validates UTF-8 here (picows never does; websockets skips it
            # with recv(decode=False)): msgspec raises UnicodeDecodeError for a bad string.
            self.rejects += 1
            return self._encode(OrderAck(-1, False, OrderResult(0, "rejected")))
        if request.method != "order.place":
            self.rejects += 1
            return self._encode(OrderAck(request.id, False, OrderResult(0, "rejected")))
        return self._encode(OrderAck(request.id, True, OrderResult(self.requests, "new")))

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rejects": self.rejects,
            "connections": self.connections,
            "write_pauses": self.write_pauses,
            "close_codes": self.close_codes,
            "transport": self.transport,
        }


# -- the servers (each in its own process) ------------------------------------------------------


async def _start_websockets(app: EchoApp) -> Any:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    handle = app.handle

    async def handler(ws: Any) -> None:
        app.connections += 1
        app.transport = _class_name(ws.transport)
        recv = ws.recv
        send = ws.send
        try:
            while True:
                data = await recv(decode=False)  # bytes even for a text frame: no str round trip
                await send(handle(data), text=True)
        except ConnectionClosed:
            pass

    return await serve(handler, HOST, 0)


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


async def _start_picows(app: EchoApp, use_aiofastnet: bool | None) -> Any:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

    handle = app.handle
    text = WSMsgType.TEXT

    class Listener(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            app.connections += 1
            app.transport = _class_name(transport.underlying_transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            msg_type = frame.msg_type
            if msg_type == text and frame.fin:
                # The frame's payload lives in picows' read buffer only during this call;
                # msgspec copies out what it keeps.
                transport.send(text, handle(frame.get_payload_as_memoryview()))
            elif msg_type == WSMsgType.CLOSE:
                # picows leaves the close handshake to the listener: echo the code, then drop
                # the TCP connection (the server closes first, RFC 6455 section 7.1.1).
                code = frame.get_close_code()
                key = str(getattr(code, "value", code))
                app.close_codes[key] = app.close_codes.get(key, 0) + 1
                transport.send_close(code, frame.get_close_message())
                transport.disconnect()
            elif msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                # picows hands over frames, not messages: fragments would need reassembly.
                transport.send_close(WSCloseCode.UNSUPPORTED_DATA, b"single text frames only")
                transport.disconnect()
            # PING is answered by picows itself (enable_auto_pong); PONG is ignored.

        def pause_writing(self) -> None:
            # The default implementation logs a warning each time.
            app.write_pauses += 1

        def resume_writing(self) -> None:
            pass

    return await ws_create_server(
        lambda request: Listener(), HOST, 0, use_aiofastnet=use_aiofastnet
    )


async def _serve(kind: str, conn: Any) -> None:
    app = EchoApp()
    if kind == "websockets-aiofastnet":
        import aiofastnet

        aiofastnet.patch_loop()
    if kind.startswith("websockets"):
        server = await _start_websockets(app)
    else:
        server = await _start_picows(app, False if kind == "picows-uvloop" else None)
    port = server.sockets[0].getsockname()[1]
    conn.send(("ready", port))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    await stop.wait()
    loop.remove_reader(conn.fileno())
    conn.recv()
    server.close()
    conn.send(("stats", app.stats()))


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _server_process(kind: str, conn: Any, cpu: int | None) -> None:
    import uvloop

    _pin(cpu)
    try:
        uvloop.run(_serve(kind, conn))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


# -- the load client (its own process) ----------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Conn:
    """One client connection's counters and the ids it still waits for."""

    def __init__(self, index: int, ws: Any) -> None:
        self.ws = ws
        self.base = (index + 1) * ID_BASE
        self.next_seq = 0
        self.pending: deque[tuple[int, float]] = deque()
        self.sent = 0
        self.received = 0
        self.mismatched = 0
        self.out_of_order = 0
        self.not_ok = 0
        self.latencies = array("d")


async def _drive(
    c: _Conn,
    n: int,
    window: int,
    deadline: float,
    rate: float | None,
    record: bool,
    batch: bool,
) -> None:
    """Send ``n`` requests on one connection (at ``rate`` per s, or as fast as the window
    lets), until ``deadline``; then wait for every outstanding response.

    ``batch``: whenever the window has room, frame all the requests it allows with the
    websockets protocol (``protocol.send_text``) and write them with one
    ``transport.writelines`` call.  Otherwise one ``await ws.send(...)`` per request, which
    costs the client a ``send`` system call (and a coroutine) per message.
    """
    decode = msgspec.json.Decoder(OrderAck).decode
    now = time.perf_counter
    ws = c.ws
    send = ws.send
    recv = ws.recv
    send_text = ws.protocol.send_text
    data_to_send = ws.protocol.data_to_send
    writelines = ws.transport.writelines
    pending = c.pending
    latencies = c.latencies
    space = asyncio.Event()
    loop = asyncio.get_running_loop()
    drained = loop.create_future()
    sender_done = False

    async def receive() -> None:
        try:
            await receive_loop()
        finally:
            space.set()  # connection lost: wake the sender

    async def receive_loop() -> None:
        while True:
            data = await recv(decode=False)
            t = now()
            ack = decode(data)
            rid = ack.id
            if pending and pending[0][0] == rid:
                sent_at = pending.popleft()[1]
            else:
                for i, (pid, _) in enumerate(pending):
                    if pid == rid:
                        sent_at = pending[i][1]
                        del pending[i]
                        c.out_of_order += 1
                        break
                else:
                    c.mismatched += 1
                    continue
            c.received += 1
            if not ack.ok or ack.result.status != "new":
                c.not_ok += 1
            if record:
                latencies.append(t - sent_at)
            space.set()
            if sender_done and not pending and not drained.done():
                drained.set_result(None)

    receiver = asyncio.create_task(receive())
    base = c.base
    try:
        start = now()
        done = 0
        while done < n:
            if receiver.done() or now() > deadline:
                break
            k = min(window - len(pending), n - done)
            if k <= 0:
                space.clear()
                await space.wait()
                continue
            if rate:
                due = int((now() - start) * rate) + 1 - done
                if due <= 0:
                    # uvloop's timers tick in milliseconds: send what is due in 1 ms bursts.
                    await asyncio.sleep(max(start + done / rate - now(), 0.001))
                    continue
                k = min(k, due)
            if batch:
                t = now()
                for _ in range(k):
                    msg_id = base + c.next_seq
                    c.next_seq += 1
                    pending.append((msg_id, t))
                    send_text(REQUEST_TEMPLATE % (msg_id, msg_id))
                writelines(data_to_send())
                c.sent += k
                done += k
            else:
                for _ in range(k):
                    msg_id = base + c.next_seq
                    c.next_seq += 1
                    pending.append((msg_id, now()))
                    await send(REQUEST_TEMPLATE % (msg_id, msg_id), text=True)
                    c.sent += 1
                    done += 1
        sender_done = True
        if pending and not receiver.done():
            await asyncio.wait(
                [receiver, drained], timeout=DRAIN_TIMEOUT, return_when="FIRST_COMPLETED"
            )
    finally:
        receiver.cancel()
        try:
            await receiver
        except asyncio.CancelledError:
            pass
        except Exception:
            # The connection failed: the counters show what is missing.
            pass


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _client(port: int, server_pid: int, p: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    uri = f"ws://{HOST}:{port}/"
    n_conns = p["connections"]
    conns = []
    for i in range(n_conns):
        ws = await connect(
            uri,
            compression="deflate" if p["deflate"] else None,
            ping_interval=None,  # keepalive off during the load; pings are checked after it
            max_size=2**20,
        )
        conns.append(_Conn(i, ws))
    extensions = [type(e).__name__ for e in getattr(conns[0].ws.protocol, "extensions", [])]

    forever = time.perf_counter() + 3600.0
    if p["warmup"]:
        await asyncio.gather(
            *(
                _drive(c, n, p["window"], forever, None, False, p["batch"])
                for c, n in zip(conns, _split(p["warmup"], n_conns), strict=True)
            )
        )
    warm = [(c.sent, c.received) for c in conns]

    rate = p["rate"] / n_conns if p["rate"] else None
    cpu_client0 = time.process_time()
    cpu_server0 = _proc_cpu_seconds(server_pid)
    t0 = time.perf_counter()
    deadline = t0 + p["time_limit"]
    await asyncio.gather(
        *(
            _drive(c, n, p["window"], deadline, rate, True, p["batch"])
            for c, n in zip(conns, _split(p["count"], n_conns), strict=True)
        )
    )
    elapsed = time.perf_counter() - t0
    cpu_client = time.process_time() - cpu_client0
    cpu_server1 = _proc_cpu_seconds(server_pid)
    cpu_server = None if cpu_server0 is None or cpu_server1 is None else cpu_server1 - cpu_server0

    # Control frames: one ping per connection must come back as a pong.
    pongs = 0
    for c in conns:
        try:
            waiter = await c.ws.ping()
            await asyncio.wait_for(waiter, 5.0)
            pongs += 1
        except Exception:
            pass
    # Close handshake: the server must echo code 1000.
    close_codes: dict[str, int] = {}
    close_seconds = 0.0
    for c in conns:
        t = time.perf_counter()
        await c.ws.close(1000, "done")
        close_seconds = max(close_seconds, time.perf_counter() - t)
        rcvd = c.ws.protocol.close_rcvd
        key = str(rcvd.code) if rcvd is not None else "none"
        close_codes[key] = close_codes.get(key, 0) + 1

    sent = sum(c.sent for c in conns) - sum(s for s, _ in warm)
    received = sum(c.received for c in conns) - sum(r for _, r in warm)
    latencies = sorted(x for c in conns for x in c.latencies)
    return {
        "sent": sent,
        "received": received,
        "sent_total": sum(c.sent for c in conns),
        "received_total": sum(c.received for c in conns),
        "mismatched": sum(c.mismatched for c in conns),
        "out_of_order": sum(c.out_of_order for c in conns),
        "not_ok": sum(c.not_ok for c in conns),
        "elapsed_s": elapsed,
        "msgs_per_s": received / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "p999_ms": percentile(latencies, 0.999) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
        "client_cpu": cpu_client / elapsed if elapsed > 0 else None,
        "server_cpu": cpu_server / elapsed if cpu_server is not None and elapsed > 0 else None,
        "server_us_per_msg": (cpu_server / received * 1e6) if cpu_server and received else None,
        "pongs": pongs,
        "close_codes_rcvd": close_codes,
        "close_s_max": close_seconds,
        "extensions": extensions,
    }


def _client_process(
    port: int, server_pid: int, params: dict[str, Any], conn: Any, cpu: int | None
) -> None:
    import uvloop

    _pin(cpu)
    try:
        conn.send(("result", uvloop.run(_client(port, server_pid, params))))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


# -- orchestration (the parent process only waits) ----------------------------------------------


def _recv(conn: Any, tag: str, timeout: float, what: str) -> Any:
    """The payload of the next ``(tag, payload)`` message on a pipe."""
    if not conn.poll(timeout):
        raise RuntimeError(f"{what}: no answer within {timeout:.0f} s")
    got, payload = conn.recv()
    if got == "error":
        raise RuntimeError(f"{what} failed:\n{payload}")
    if got != tag:
        raise RuntimeError(f"{what}: expected {tag!r}, got {got!r}")
    return payload


def run_once(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """One measurement: a fresh ``kind`` server process and a fresh load-client process."""
    ctx = multiprocessing.get_context("spawn")
    srv_conn, srv_child = ctx.Pipe()
    pin = params["pin"] and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    server = ctx.Process(
        target=_server_process, args=(kind, srv_child, 0 if pin else None), daemon=True
    )
    server.start()
    client = None
    try:
        port = _recv(srv_conn, "ready", STARTUP_TIMEOUT, f"{kind} server")
        cli_conn, cli_child = ctx.Pipe()
        client = ctx.Process(
            target=_client_process,
            args=(port, server.pid, params, cli_child, 1 if pin else None),
            daemon=True,
        )
        client.start()
        budget = STARTUP_TIMEOUT + params["time_limit"] + 2 * DRAIN_TIMEOUT + 60.0
        result = _recv(cli_conn, "result", budget, f"load client against {kind}")
        client.join(STARTUP_TIMEOUT)
        srv_conn.send("stop")
        result["server"] = _recv(srv_conn, "stats", STARTUP_TIMEOUT, f"{kind} server stop")
        server.join(STARTUP_TIMEOUT)
    finally:
        for proc in (client, server):
            if proc is not None and proc.is_alive():
                proc.kill()
                proc.join()
    result["server_kind"] = kind
    result["checks"] = _checks(result, params)
    result["ok"] = all(result["checks"].values())
    return result


def _checks(r: dict[str, Any], params: dict[str, Any]) -> dict[str, bool]:
    return {
        "all_sent": r["sent"] == params["count"] or r["elapsed_s"] >= params["time_limit"],
        "received_eq_sent": r["received"] == r["sent"] and r["received_total"] == r["sent_total"],
        "ids_match": r["mismatched"] == 0,
        "acks_ok": r["not_ok"] == 0,
        "server_saw_all": r["server"]["requests"] == r["sent_total"]
        and r["server"]["rejects"] == 0,
        "pongs": r["pongs"] == params["connections"],
        "close_1000_echoed": r["close_codes_rcvd"] == {"1000": params["connections"]},
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run_benchmark(
    servers: tuple[str, ...] = SERVERS,
    count: int = DEFAULT_COUNT,
    connections: int = DEFAULT_CONNECTIONS,
    window: int = DEFAULT_WINDOW,
    time_limit: float = DEFAULT_TIME_LIMIT,
    runs: int = DEFAULT_RUNS,
    rate: float | None = None,
    warmup: int = DEFAULT_WARMUP,
    deflate: bool = False,
    batch: bool = True,
    pin: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure each server ``runs`` times (alternating their order) and summarize.

    Returns a JSON-able report: ``results[server]`` holds the medians and each run's raw
    figures; ``ok`` is true when every run passed every correctness check.
    """
    if count < 1 or connections < 1 or window < 1 or runs < 1 or time_limit <= 0:
        raise ValueError("count, connections, window, runs and time_limit must be positive")
    for kind in servers:
        if kind not in VARIANTS:
            raise ValueError(f"unknown server {kind!r}; choose from {VARIANTS}")
    params = {
        "count": count,
        "connections": connections,
        "window": window,
        "time_limit": time_limit,
        "rate": rate,
        "warmup": warmup,
        "deflate": deflate,
        "batch": batch,
        "pin": pin,
    }
    load_before = os.getloadavg()
    raw: dict[str, list[dict[str, Any]]] = {kind: [] for kind in servers}
    for i in range(runs):
        order = servers if i % 2 == 0 else tuple(reversed(servers))
        for kind in order:
            result = run_once(kind, params)
            raw[kind].append(result)
            if progress:
                print(
                    f"  run {i + 1}/{runs} {kind:<10} {result['msgs_per_s']:>10,.0f} msgs/s"
                    f"  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
                    f"  {'ok' if result['ok'] else 'FAILED'}",
                    file=sys.stderr,
                    flush=True,
                )
    results = {}
    for kind, rs in raw.items():
        results[kind] = {
            "msgs_per_s": _median([r["msgs_per_s"] for r in rs]),
            "p50_ms": _median([r["p50_ms"] for r in rs]),
            "p99_ms": _median([r["p99_ms"] for r in rs]),
            "p999_ms": _median([r["p999_ms"] for r in rs]),
            "server_cpu": _median([r["server_cpu"] for r in rs]),
            "client_cpu": _median([r["client_cpu"] for r in rs]),
            "server_us_per_msg": _median([r["server_us_per_msg"] for r in rs]),
            "ok": all(r["ok"] for r in rs),
            "runs": rs,
        }
    ratio = None
    if "websockets" in results and "picows" in results:
        ws_rate = results["websockets"]["msgs_per_s"]
        ratio = results["picows"]["msgs_per_s"] / ws_rate if ws_rate else None
    return {
        "benchmark": "transport_echo",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "params": params,
        "request_bytes": len(request_bytes(ID_BASE)),
        "response_bytes": len(msgspec.json.encode(OrderAck(ID_BASE, True, OrderResult(1, "new")))),
        "results": results,
        "ratio_picows_over_websockets": ratio,
        "ok": all(r["ok"] for r in results.values()),
    }


def machine_info() -> dict[str, Any]:
    """CPU model, cores, Python and library versions: printed with every result."""
    return common.machine_info(("websockets", "picows", "uvloop", "msgspec"))


# -- output -------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any]) -> str:
    """A readable table of both servers, their ratio and the machine."""
    m = report["machine"]
    p = report["params"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    mode = f"fixed rate {p['rate']:,.0f} msgs/s" if p["rate"] else "saturation"
    w = max(11, *(len(kind) + 2 for kind in report["results"]))
    lines = [
        f"Websocket echo of order-sized JSON ({report['request_bytes']} B request, "
        f"{report['response_bytes']} B response), {mode}",
        f"{p['connections']} connections x {p['window']} in flight, {p['count']:,} messages "
        f"(limit {p['time_limit']:g} s, warm-up {p['warmup']:,}), "
        f"median of {len(next(iter(report['results'].values()))['runs'])} runs"
        + (", client offers permessage-deflate" if p["deflate"] else ""),
        "client: websockets "
        + (
            "protocol framing, the requests the window allows written in one writelines"
            if p["batch"]
            else "ws.send() per request"
        )
        + ("; server pinned to CPU 0, client to CPU 1" if p.get("pin") else ""),
        f"machine: {m['cpu']}, {m['cores']} cores, {m['python']}, {m['os']}",
        f"libraries: {libs}; uvloop loop in every process",
        f"date: {report['date']}; 1-minute load average {report['load_average_1m']['before']:.2f}"
        f" before, {report['load_average_1m']['after']:.2f} after",
        "",
        f"{'server':<{w}}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'srv CPU':>9}{'cli CPU':>9}{'srv us/msg':>12}  {'checks':<7}runs (msgs/s)",
    ]
    for kind, r in report["results"].items():
        each = " ".join(f"{x['msgs_per_s'] / 1000:.1f}k" for x in r["runs"])
        lines.append(
            f"{kind:<{w}}{_num(r['msgs_per_s'], ',.0f'):>10}{_num(r['p50_ms'], '.2f'):>9}"
            f"{_num(r['p99_ms'], '.2f'):>9}{_num(r['p999_ms'], '.2f'):>10}"
            f"{_pct(r['server_cpu']):>9}{_pct(r['client_cpu']):>9}"
            f"{_num(r['server_us_per_msg'], '.1f'):>12}  {'ok' if r['ok'] else 'FAILED':<7}{each}"
        )
    lines.append("")
    for kind, r in report["results"].items():
        transports = sorted({x["server"].get("transport", "") for x in r["runs"]})
        lines.append(f"{kind} server socket transport: {', '.join(transports)}")
    ratio = report["ratio_picows_over_websockets"]
    if ratio is not None:
        res = report["results"]
        cpu_ws = res["websockets"]["server_us_per_msg"]
        cpu_pw = res["picows"]["server_us_per_msg"]
        lines.append("")
        if p["rate"]:
            ws_r, pw_r = res["websockets"], res["picows"]
            lines.append(
                f"fixed rate: achieved {ws_r['msgs_per_s']:,.0f} (websockets) and "
                f"{pw_r['msgs_per_s']:,.0f} (picows) msgs/s; latency websockets / picows: "
                f"p50 {ws_r['p50_ms'] / pw_r['p50_ms']:.2f}x, "
                f"p99 {ws_r['p99_ms'] / pw_r['p99_ms']:.2f}x"
            )
        else:
            lines.append(f"picows / websockets: {ratio:.2f}x messages/s")
        if cpu_ws and cpu_pw:
            lines.append(
                f"server CPU per message: websockets {cpu_ws:.1f} us, picows {cpu_pw:.1f} us "
                f"({cpu_ws / cpu_pw:.2f}x less for picows)"
            )
    for kind, r in report["results"].items():
        for i, x in enumerate(r["runs"], 1):
            failed = [name for name, good in x["checks"].items() if not good]
            if failed:
                lines.append(f"{kind} run {i} FAILED checks: {', '.join(failed)}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="messages per run (all connections)"
    )
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--window", type=int, default=DEFAULT_WINDOW, help="requests in flight per connection"
    )
    parser.add_argument(
        "--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help="seconds per run at most"
    )
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="runs per server, median reported"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="fixed total request rate (msgs/s) instead"
    )
    parser.add_argument(
        "--warmup", type=int, default=DEFAULT_WARMUP, help="unmeasured requests before each run"
    )
    parser.add_argument("--deflate", action="store_true", help="client offers permessage-deflate")
    parser.add_argument(
        "--per-message-send",
        action="store_true",
        help="client awaits ws.send() per request instead of batching its writes",
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the server to CPU 0 and the client to CPU 1"
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, from: {','.join(VARIANTS)} (default {','.join(SERVERS)})",
    )


def run(args: argparse.Namespace) -> int:
    """Run what the parsed options ask for; returns the exit status."""
    report = run_benchmark(
        servers=tuple(s.strip() for s in args.servers.split(",") if s.strip()),
        count=args.count,
        connections=args.connections,
        window=args.window,
        time_limit=args.time_limit,
        runs=args.runs,
        rate=args.rate,
        warmup=args.warmup,
        deflate=args.deflate,
        batch=not args.per_message_send,
        pin=args.pin,
        progress=not args.json,
    )
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transport_echo",
        description="Echo benchmark of order-sized JSON: websockets against picows.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
