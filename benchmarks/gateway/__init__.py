"""The gateway benchmark (``alatau bench gateway``, ``python -m benchmarks.gateway_bench``),
one job per module.  What it measures and how is in the docstring of
``benchmarks/gateway_bench.py``, its entry.

    cli          the options, one run or the --fanout pair, the report, the exit status
    driver       one measurement: server, venue set-up, workers, go, results, stop
    server       ``alatau serve`` in its own process; CPU accounting from /proc
    cluster      --cluster: NATS nodes, replicas and a gateway (``gateway.app.cluster_up``)
    workers      driver <-> worker process: ready / go / stop / done
    bots         the bots' worker: requests in flight, responses matched, tallies
    flow         what each bot sends: the mix, prices, quantities, --max-open, --batch
    ticker       the fixed-rate mode's clock (timerfd)
    subscribers  the subscribers' worker: book and trades, seq contiguity
    client       the workers' picows connection and client framing
    messages     the typed decoders of what the workers read
    results      the workers' results combined into the report's figures
    report       progress lines and the report as text
    chart        latency percentile charts of runs (--chart; ``alatau bench chart``)
    profiling    py-spy on the server, and where its time goes

The imports run one way, from the entry down: ``cli`` -> ``driver`` -> ``cluster``,
``server``,
``workers``, ``results``, ``profiling``, ``report``, ``chart`` (matplotlib only inside
``chart.draw``); the workers' side, ``bots`` and
``subscribers`` -> ``flow``, ``ticker``, ``client``, ``messages``, ``workers`` (``ticker``
names ``Bot`` only in annotations).  Nothing imports ``tests``: ``alatau bench`` runs the
benchmark from an installed ``benchmarks`` package (``tests/test_tools_layout.py``).
"""
