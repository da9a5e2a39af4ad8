"""The end-to-end benchmark: bots placing and canceling orders through the websocket gateway.

Run it as ``alatau bench gateway`` (or ``python -m benchmarks.gateway_bench``; ``--help`` for
the options).  The code is the package ``benchmarks.gateway``, one job per module (its
docstring lists them); this module is the entry.  Every process is separate, as a user's
would be:

* the server: ``alatau serve`` started as its own process on 127.0.0.1, port 0, with the
  rate limits raised out of the way (``--rate 1e9 --participant-rate 1e9``), the chosen
  ``--durability`` (``fsync`` by default) and ``--transport`` (the server's default unless
  given), and a fresh temporary data directory;
* the bots: ``--clients`` connections spread over ``--client-procs`` processes, each process
  on uvloop with the ``picows`` client.  Each connection is a PROFESSIONAL participant
  ``loadbot{i}`` created by the driver through the admin calls (``admin.participant``, no
  limits; ``admin.deposit`` of ample funds), so no demo participant's caps get in the way;
* the subscribers (``--subscribers M``): M connections in ``--sub-procs`` other processes,
  each following ``book:{market}`` and ``trades:{market}`` and only reading;
* the driver (this process): starts the others, waits until every connection is logged in
  (or subscribed, with its book snapshot), says "go", collects the results (each worker
  writes a JSON file in the temporary directory) and always stops the server
  (``try``/``finally``: SIGTERM, then SIGKILL; SIGTERM or Ctrl-C to the driver does the
  same, and the children get SIGTERM from the kernel if the driver dies outright).

The clients share the machine with the server, so on a small machine every microsecond of
client CPU per request is taken from the server: the workers are built to be cheap per
message (see "the workers' websocket client" below: picows callbacks instead of a coroutine
per message, typed decoders that keep only the fields read, and a connection's requests
framed by the bench and written together, one system call for all the requests that one
read's responses let go).

The bots' order flow, per connection, seeded: about 55 % passive GTC limit orders priced 1 to
50 ticks from the market's reference price (never crossing), 10 % IOC limit orders priced
``CROSS_TICKS`` through the reference so that trades happen, and 35 % cancels of one of the
connection's own open orders, chosen at random.  A connection never has more than
``--max-open`` orders open: with the orders it knows open it counts its passive places not yet
answered (in flight, or waiting in their batch) and the orders of its cancels not yet sent,
and at the cap a passive place becomes a cancel (or, with no order known open to cancel, a
crossing IOC, which never rests: so a ``--max-open`` below a window's passive places, about
0.55 times ``--window`` times K, shifts the mix towards IOCs).  A cancel of an order an IOC
filled in the meantime gets ``UNKNOWN_ORDER``: that business reject is expected and counted
apart.  Any other error code is unexpected and makes the exit status 1.

``--batch K`` (1 to 50; default 1: one ``order.place`` or ``order.cancel`` per request) sends
the same flow K operations per request, as a market maker entering and pulling quotes in
bulk would: the operations are drawn one by one as with 1, the places (passive and IOC) go
to the connection's next ``order.batch`` and the cancels to its next ``order.cancel_batch``,
and a request leaves as soon as one of the two holds K; once the flow's operations are all
drawn, what is left goes too (so every request but a connection's last two carries K, and
the flow's mix is the one above).  A cancel picks its order when it is drawn, so it may wait
in its group while an IOC fills that order: with K > 1 a few more cancels get
``UNKNOWN_ORDER`` (per item: the batch's other items are unaffected).  The bot learns its
placed orders' ids from the batch response's items, in order.  The window stays in requests.

Two modes:

``--rate 0`` (saturation, the default)
    Each connection keeps ``--window`` requests in flight; latency runs from just before the
    request's send to its response (matched by id), so it includes the window's queueing.
``--rate R``
    Open loop: R orders (operations) per second in total, each connection on its own fixed
    schedule (staggered across connections): one request every ``clients`` / R seconds, or
    with ``--batch K`` one request of K every ``clients`` * K / R seconds (R / K requests/s
    in total).  Latency runs from the *scheduled* send time, so a stalled server
    cannot hide its stall by slowing the sender (no coordinated omission).  Sends are timed
    by a Linux timerfd (``_Ticker``), so they leave within some tens of microseconds of
    their schedule (on a busy machine, later: that shows in the latency too, as it would for
    a real client); elsewhere by uvloop's timers.

A run sends ``--warmup`` operations per connection first (not measured), then up to
``--count`` operations in total, stopping early after ``--duration`` seconds; responses still
missing ``DRAIN_TIMEOUT`` seconds later are counted as lost.  (With K > 1 a request may carry
the last warm-up operations and the first measured ones: only the latter are counted, and
the request is a measured one.)

Reported: orders (operations) acknowledged per second in the measured phase (an ``ok`` and a
business reject both acknowledge an order; they are counted apart, and places, crossing
places and cancels apart too); requests acknowledged per second (the same figure with K 1);
round-trip latency p50 / p99 / p99.9 / max per request (a batch's response time, which is
each of its orders' acknowledgement time; per kind of order, each order counted with its
request's latency); the CPU used by the server and the client processes over the phase (a
client near 100 % means the figure is client-bound), per order and per request answered;
the machine's CPU use and what of it the bench's processes do not account for (a
neighbour's load on a shared machine: over ``OTHER_LOAD_WARNING`` cores the report warns
that the figures are disturbed), and, with
subscribers, the messages per second each subscriber received, whether every subscriber saw
contiguous book ``seq``s with the same final seq, and how long after the bots' last response
the subscribers got their last message (a book update may cover several of the book's
changes, ``first_seq`` to ``seq``; trades may come one per message or as a list).
``--fanout`` runs the saturation measurement twice, with no subscriber and with M (default
100), each on a fresh server, and reports the ratio.

``--profile FILE`` samples the server with py-spy during the measured phase (collapsed
stacks to FILE, every thread; sampling pauses the server briefly, so a profiled run's rates
are a little lower) and reports where the event loop thread's time goes: by layer
(``LAYERS``), by innermost frame and by frame anywhere on the stack.  ``--profile-native``
adds the C frames (uvloop, picows, libc: a ``send`` system call shows up as such); it costs
the server much more time per sample.
"""

from __future__ import annotations

import sys

from benchmarks.gateway.cli import add_arguments, main, run

__all__ = ["add_arguments", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
