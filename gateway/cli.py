"""The ``alatau`` command line: one entry point, one subcommand per job.

::

    alatau bench engine [--json] [--quick] [--ops N] [--runs N] [--seed N] [--growth]

Each command lives in its own module and is imported only when it runs (or, for its
options, when its parser is built), so ``alatau --help`` stays fast and a command's heavy
imports never load for another.  To add one (``serve``, ``demo``, ``journal``, ``bench
gateway``), write a ``_add_<name>`` function that registers a subparser and sets
``handler`` to a function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _bench_engine(args: argparse.Namespace) -> int:
    from benchmarks import engine_bench

    return engine_bench.run(args)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="run a benchmark")
    targets = bench.add_subparsers(dest="target", metavar="TARGET", required=True)
    engine = targets.add_parser(
        "engine",
        help="the matching engine on the standard order flow",
        description="The matching engine on the standard order flow: the compiled book per "
        "call and in batches against the plain-Python reference book, each run in a fresh "
        "process (see benchmarks/engine_bench.py).",
    )
    from benchmarks.engine_bench import add_arguments

    add_arguments(engine)
    engine.set_defaults(handler=_bench_engine)


def build_parser() -> argparse.ArgumentParser:
    """The full ``alatau`` parser."""
    parser = argparse.ArgumentParser(
        prog="alatau", description="Alatau Exchange: matching engine and gateway tools."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_bench(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alatau`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
