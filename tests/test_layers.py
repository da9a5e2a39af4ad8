"""The packages depend one way, and these tests keep it so, from the imports themselves
(every ``import``, also those inside functions).  A newcomer can tell from a folder where a
message is decoded (``gateway.wire``), where a connection's requests are handled
(``gateway.sessions``), where commands are sequenced (``gateway.sequencer``), where the
engine runs (``gateway.hosts``), where it is stored (``gateway.storage``) and where it
leaves (``gateway.transport``).

    engine                 imports nothing of gateway or benchmarks
    gateway.wire           engine: the wire format, both ways, and login signatures
    gateway.storage        engine: journal, snapshots, audit trail, sealed secrets
    gateway.sequencer      engine, wire: the one ordered command stream and its fan-out
    gateway.hosts          engine, wire, storage, sequencer: where the engine runs
    gateway.cluster        engine, wire, storage, sequencer, hosts: the replicated command
                           log on NATS JetStream and the engine replicas
    gateway.sessions       engine, wire, storage, sequencer: one connection's protocol logic
    gateway.transport      engine, wire, sessions: sockets
    gateway.sdk            wire: the Python client
    gateway.app            everything: it assembles the server and the command line

No module of ``engine`` or ``gateway`` imports ``benchmarks`` (or the tests), and the
sans-I/O layers (``wire``, ``sequencer``, ``sessions``) import no socket library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = ["wire", "storage", "sequencer", "hosts", "cluster", "sessions", "transport", "sdk", "app"]
BELOW = {
    "gateway.wire": {"engine"},
    "gateway.storage": {"engine"},
    "gateway.sequencer": {"engine", "gateway.wire"},
    "gateway.hosts": {"engine", "gateway.wire", "gateway.storage", "gateway.sequencer"},
    "gateway.cluster": {
        "engine",
        "gateway.wire",
        "gateway.storage",
        "gateway.sequencer",
        "gateway.hosts",
    },
    "gateway.sessions": {"engine", "gateway.wire", "gateway.storage", "gateway.sequencer"},
    "gateway.transport": {"engine", "gateway.wire", "gateway.sessions"},
    "gateway.sdk": {"gateway.wire"},
    "gateway.app": {"engine", *(f"gateway.{layer}" for layer in LAYERS)},
}
ALLOWED = {layer: {layer, *below} for layer, below in BELOW.items()}
SOCKET_LIBRARIES = {"socket", "websockets", "picows", "ssl", "selectors", "uvloop"}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                found.add(f"{prefix}.{node.module}" if node.module else prefix)
            else:
                assert node.module is not None
                found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "engine":
        return "engine"
    if parts[0] == "gateway" and len(parts) > 1 and f"gateway.{parts[1]}" in ALLOWED:
        return f"gateway.{parts[1]}"
    return parts[0] if parts[0] in {"gateway", "benchmarks", "tests"} else None


def test_gateway_has_no_module_outside_a_layer() -> None:
    loose = [p.name for p in (ROOT / "gateway").glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "put each gateway module in the folder of its layer"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = {}
    for path in modules(layer):
        bad = {m for m in imports_of(path) if layer_of(m) not in (None, *ALLOWED[layer])}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}


def test_engine_imports_nothing_of_gateway_or_benchmarks() -> None:
    wrong = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports_of(p) if m.split(".")[0] in {"gateway", "benchmarks", "tests"}
        )
        for p in modules("engine")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_nothing_shipped_imports_benchmarks() -> None:
    wrong = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports_of(p) if m.split(".")[0] in {"benchmarks", "tests"}
        )
        for package in ("engine", "gateway")
        for p in modules(package)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


@pytest.mark.parametrize("layer", ["gateway.wire", "gateway.sequencer", "gateway.sessions"])
def test_the_sans_io_layers_import_no_socket_library(layer: str) -> None:
    wrong = {
        str(p.relative_to(ROOT)): sorted(
            m for m in imports_of(p) if m.split(".")[0] in SOCKET_LIBRARIES
        )
        for p in modules(layer)
    }
    assert {k: v for k, v in wrong.items() if v} == {}
