"""The ``alatau`` command line: one entry point, one subcommand per job.

::

    alatau serve [--host H] [--port P] [--data-dir D] [--durability MODE] [...]
    alatau demo [--duration S]
    alatau cluster up [--data-dir D] [--port P] [--config F] [--markets F]
    alatau journal [DATA_DIR] [--salvage | --migrate]
    alatau history rebuild [DATA_DIR]
    alatau audit [DATA_DIR] [--participant ID] [--market SYMBOL] [--decision D] [--from-seq N]
    alatau bench engine [--json] [--quick] [--ops N] [--runs N] [--seed N] [--growth]
    alatau bench gateway [--json] [--quick] [--clients N] [--rate R] [--durability MODE] [...]
    alatau bench chart RUN.json [RUN.json ...] -o CHART.png [--label NAME ...] [--title T]

Each command lives in its own module and is imported only when it runs (or, for its
options, when its parser is built), so ``alatau --help`` stays fast and a command's heavy
imports never load for another; a benchmark runs as a program of its own (``python -m
benchmarks.X``), so the installed server never imports the repository's tools.  To add a
command, write a ``_add_<name>`` function that registers a subparser and sets ``handler``
to a function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

# The benchmarks are tools of the repository, not part of the installed server: ``alatau
# bench TARGET`` runs one as a program of its own (``python -m benchmarks.X``), with the
# options after TARGET handed to it, so nothing here imports them.
BENCHMARKS = {
    "engine": (
        "benchmarks.engine_bench",
        "the matching engine on the standard order flow: the compiled book per call and in "
        "batches against a plain sortedcontainers book and the reference book, each run in a "
        "fresh process",
    ),
    "gateway": (
        "benchmarks.gateway_bench",
        "the exchange end to end: `alatau serve` in its own process, bots in others placing "
        "and canceling orders over websockets on 127.0.0.1",
    ),
    "chart": (
        "benchmarks.gateway.chart",
        "saved `bench gateway --json` runs' latency percentiles in one chart (HDR style; "
        "needs the chart extra)",
    ),
}


def _bench(args: argparse.Namespace) -> int:
    if args.target is None:  # `alatau bench` alone: what there is to run
        args.bench_parser.print_help()
        return 2
    module = BENCHMARKS[args.target][0]
    prog = f"alatau bench {args.target}"
    return subprocess.call([sys.executable, "-m", module, "--prog", prog, *args.options])


def _add_bench(commands: Subcommands) -> None:
    lines = "\n".join(f"  {name:8} {text}" for name, (_module, text) in BENCHMARKS.items())
    bench = commands.add_parser(
        "bench",
        help="run a benchmark (alatau bench TARGET --help for its options)",
        description=f"Run a benchmark; its options follow TARGET.\n\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    bench.add_argument("target", nargs="?", choices=sorted(BENCHMARKS), metavar="TARGET")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options")
    bench.set_defaults(handler=_bench, bench_parser=bench)


def _serve(args: argparse.Namespace) -> int:
    from gateway.app.serve import run_serve

    return run_serve(args)


def _add_serve(commands: Subcommands) -> None:
    from gateway.app.serve import add_serve_arguments

    serve = commands.add_parser(
        "serve",
        help="run the exchange (default KZT markets and a demo venue)",
        description="Run the exchange's websocket gateway.  With no options: the default "
        "KZT markets and a demo venue whose participants, keys and admin key are printed.",
    )
    add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)


def _demo(args: argparse.Namespace) -> int:
    from gateway.app.demo import run_demo

    return run_demo(args)


def _add_demo(commands: Subcommands) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the exchange with a few bots and print trades and book changes live",
    )
    demo.add_argument("--duration", type=float, default=0, help="seconds (0: until Ctrl-C)")
    demo.add_argument("--market", default="USDT-KZT", help="the market the bots trade")
    demo.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    demo.set_defaults(handler=_demo)


def _cluster(args: argparse.Namespace) -> int:
    if args.action is None:
        args.cluster_parser.print_help()
        return 2
    from gateway.app.cluster_up import run_cluster_up

    return run_cluster_up(args)


def _add_cluster(commands: Subcommands) -> None:
    cluster = commands.add_parser(
        "cluster",
        help="run a cluster on this machine: 3 NATS nodes, 2 engine replicas, 2 gateways",
        description="alatau cluster up: three NATS JetStream nodes, two engine replicas and "
        "two gateways on 127.0.0.1 (docs/cluster.md); Ctrl-C stops everything.",
    )
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    up = actions.add_parser("up", help="start everything and run until Ctrl-C")
    from gateway.app.cluster_up import add_arguments

    add_arguments(up)
    cluster.set_defaults(handler=_cluster, cluster_parser=cluster, action=None)


def _journal(args: argparse.Namespace) -> int:
    from gateway.storage.datadir import describe, migrate, salvage

    if args.salvage:
        report, healthy = salvage(args.data_dir)
    elif args.migrate:
        report, healthy = migrate(args.data_dir)
    else:
        report, healthy = describe(args.data_dir)
    print(report)
    return 0 if healthy else 1


def _add_journal(commands: Subcommands) -> None:
    journal = commands.add_parser(
        "journal",
        help="inspect a data directory: segments, records, last seq, checksums, snapshots",
        description="Check a data directory as startup does and say what startup would do "
        "(healthy, a torn tail it cuts, or CORRUPT at file:offset, exit status 1).  With "
        "--salvage, set everything from the damage on aside into DATA_DIR/salvaged-<time>/ "
        "(no byte deleted) so that startup can go on; see docs/operations.md first.",
    )
    journal.add_argument("data_dir", nargs="?", default="alatau-data")
    action = journal.add_mutually_exclusive_group()
    action.add_argument(
        "--salvage",
        action="store_true",
        help="set the damaged part of the journal aside (kept) so that startup can go on",
    )
    action.add_argument(
        "--migrate",
        action="store_true",
        help="convert a data directory written by an earlier version (journal ALTJRNL1)",
    )
    journal.set_defaults(handler=_journal)


def _history(args: argparse.Namespace) -> int:
    from gateway.app.history import rebuild_history
    from gateway.hosts.build import VenueFiles
    from gateway.storage.sealing import resolve_secret_box

    box = resolve_secret_box(key_file=args.secrets_key_file, data_dir=args.data_dir)
    files = VenueFiles(args.venue_file, args.markets_file, args.production, box)
    print(rebuild_history(args.data_dir, files))
    return 0


def _add_history(commands: Subcommands) -> None:
    history = commands.add_parser(
        "history",
        help="the history database (trades, fills, orders): rebuild it from the journal",
        description="Rebuild DATA_DIR/history.sqlite from the journal, with the server "
        "stopped and the same --config, --markets and --production as the server's.",
    )
    history.add_argument("action", choices=("rebuild",))
    history.add_argument("data_dir", nargs="?", default="alatau-data")
    history.add_argument("--config", dest="venue_file", help="the server's venue file")
    history.add_argument("--markets", dest="markets_file", help="the server's markets file")
    history.add_argument("--production", action="store_true", help="as the server was started")
    history.add_argument("--secrets-key-file", help="as the server was started")
    history.set_defaults(handler=_history)


def _audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.storage.audit import list_audit_files, read_lines

    data_dir = Path(args.data_dir)
    if not list_audit_files(data_dir):
        print(f"{data_dir}: no audit trail (no audit-*.jsonl files)", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    damaged: list[str] = []
    try:
        for line in read_lines(
            data_dir,
            participant=args.participant,
            market=args.market,
            decision=args.decision,
            from_seq=args.from_seq,
            damaged=damaged,
        ):
            out.write(line)
        out.flush()
    except BrokenPipeError:  # `alatau audit | head`
        pass
    for problem in damaged:
        print(f"skipped {problem}", file=sys.stderr)
    return 1 if damaged else 0


def _add_audit(commands: Subcommands) -> None:
    audit = commands.add_parser(
        "audit",
        help="print the audit trail: every check-chain decision, as JSON lines",
        description="Print the audit trail of a data directory: every decision of the "
        "pre-trade check chain (accept or reject), with the command's seq, the participant, "
        "the order, the check and the code, one JSON object per line, oldest first.",
    )
    audit.add_argument("data_dir", nargs="?", default="alatau-data")
    audit.add_argument("--participant", help="only this participant's decisions")
    audit.add_argument("--market", help="only decisions on this market")
    audit.add_argument("--decision", choices=("accept", "reject"), help="only accepts or rejects")
    audit.add_argument("--from-seq", type=int, default=0, help="only commands from this seq on")
    audit.set_defaults(handler=_audit)


def build_parser() -> argparse.ArgumentParser:
    """The full ``alatau`` parser."""
    parser = argparse.ArgumentParser(
        prog="alatau", description="Alatau Exchange: matching engine and gateway tools."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(commands)
    _add_demo(commands)
    _add_cluster(commands)
    _add_journal(commands)
    _add_audit(commands)
    _add_history(commands)
    _add_bench(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alatau`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
