"""Test helpers live with the tests, and the benchmarks are tools, not the tests' library.

* A test builds its venues and command streams with ``tests.kit`` (and the gateway tests
  with ``tests/gateway_harness.py``), never with ``benchmarks``: only the tests *of* a
  benchmark import it, and only the benchmark they test (``BENCHMARK_TESTS``).
* The benchmarks ``alatau bench`` runs (``gateway.app.cli.BENCHMARKS``) import nothing of the
  tests, directly or through another benchmark module: they run from an installed
  ``benchmarks`` package, where ``tests`` is not.  (The soak and exchange benchmarks run
  from the repository, with ``python -m``, and use ``tests.kit``'s stream and venue.)

Checked from the imports themselves (``ast``: every ``import``, also inside functions).
"""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.app.cli import BENCHMARKS

ROOT = Path(__file__).resolve().parent.parent

BENCHMARK_TESTS = {
    # test module: the benchmark modules (and packages) it tests
    "test_bench_ab.py": {"benchmarks.ab"},
    "test_bench_engine.py": {"benchmarks.engine_bench", "benchmarks.flow"},
    "test_plain_book.py": {"benchmarks.plain_book", "benchmarks.flow"},
    "test_bench_chart.py": {"benchmarks.gateway"},
    "test_bench_report.py": {"benchmarks.gateway.report"},
    "test_bench_gateway.py": {"benchmarks.gateway_bench", "benchmarks.gateway"},
    "test_gateway_bench_client.py": {"benchmarks.gateway_bench", "benchmarks.gateway"},
    "test_exchange_bench.py": {"benchmarks.exchange_bench"},
    "test_exchange_soak.py": {"benchmarks.soak_exchange"},
    "test_fsync_latency.py": {"benchmarks.fsync_latency"},
    "test_history_bench.py": {"benchmarks.history_bench"},
    "test_transport_echo.py": {"benchmarks.transport_echo"},
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names; ``from P import n`` counts
    as ``P`` and as ``P.n`` (``n`` may be a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, prefixes: set[str]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def path_of(module: str) -> Path | None:
    """The source of a module of the repository (a package: its ``__init__.py``)."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_tests_import_no_benchmark_but_the_one_they_test() -> None:
    wrong = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        allowed = BENCHMARK_TESTS.get(path.name, set()) if path.parent.name == "tests" else set()
        bad = {
            m
            for m in imports_of(path)
            if m.split(".")[0] == "benchmarks" and m != "benchmarks" and not within(m, allowed)
        }
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, "build test inputs with tests.kit; import a benchmark only to test it"


def test_the_benchmarks_alatau_runs_import_nothing_of_the_tests() -> None:
    seen: set[Path] = set()
    todo = [path_of(module) for module, _ in BENCHMARKS.values()]
    assert None not in todo
    wrong = {}
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        imported = imports_of(path)
        bad = sorted(m for m in imported if m.split(".")[0] == "tests")
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
        todo += [path_of(m) for m in imported if m.split(".")[0] == "benchmarks"]
    assert wrong == {}
    assert len(seen) >= len(BENCHMARKS)


def test_the_tests_kit_is_where_the_tests_say() -> None:
    """The venue builders and the random command stream are the kit's, in one copy."""
    from tests.kit import commands, venues

    assert commands.soak_venue().markets.keys() >= {"BTC-KZT", "USDT-KZT"}
    assert venues.licensed_venue(("a",)).markets.keys() == commands.soak_venue().markets.keys()
    soak = (ROOT / "benchmarks" / "soak_exchange.py").read_text()
    assert "def random_command" not in soak and "def licensed_venue" not in soak
