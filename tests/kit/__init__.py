"""The tests' kit: the worlds tests build and the inputs they feed them.

``tests.kit.venues``
    Exchanges whose participants pass every licensing check (``licensed_venue``,
    ``new_venue``), the venue licence they trade under, a professional client, ``TS0``.
``tests.kit.commands``
    The seeded random command stream (``random_command``) over its participants and
    markets, and the venue it runs on (``soak_venue``).
``tests.kit.reports``
    Engine reports built by hand (``order_report``, ``fill_report``: defaults, any field
    overridden), for the tests of what reads them.
``tests.kit.connections``
    A session's connection that keeps what is sent to it (``RecordingConnection``), for
    tests that drive ``Session.on_frame`` without a socket.

The kit belongs to the tests: no test imports ``benchmarks`` for its inputs (only the tests
of a benchmark import that benchmark; ``tests/test_tools_layout.py`` checks it).  The soak
benchmark (``benchmarks/soak_exchange.py``) and the exchange benchmark run from the
repository and use the kit's stream and venue, so there is one copy of each.  The gateway
tests' harness is ``tests/gateway_harness.py``.
"""
