"""The order path's modules run compiled, and never from a build older than their source.

``setup.py`` compiles the gateway's modules on an order's path with Cython; the extension
shadows the ``.py`` it was built from, so an edited module whose build is old would be
tested (and served) as it was, not as it reads.  These tests fail then, saying to rebuild.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

import pytest

from gateway.app import compiled

# What an order passes through: these must be among the compiled modules.
ORDER_PATH = (
    "gateway.transport.picows_server",
    "gateway.sessions.session",
    "gateway.sequencer.venue",
    "gateway.hosts.local",
    "gateway.storage.journal",
)


def test_no_compiled_module_is_older_than_its_source() -> None:
    stale = compiled.stale()
    assert not stale, f"{'; '.join(stale)}: rebuild with {compiled.REBUILD}"


@pytest.mark.skipif(
    os.environ.get("ALATAU_PURE_PYTHON") == "1", reason="built with ALATAU_PURE_PYTHON=1"
)
def test_the_order_path_is_imported_compiled() -> None:
    modules = compiled.compiled_modules()
    assert set(ORDER_PATH) <= set(modules), "the build did not compile the order path"
    for name in modules:
        module = importlib.import_module(name)
        assert compiled.is_extension(name), f"{name} is imported from {module.__file__}"


def test_a_changed_source_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "compiled_sources.json"
    manifest.write_text(json.dumps({"gateway.sessions.session": "0" * 64}))
    monkeypatch.setattr(compiled, "MANIFEST", manifest)
    assert compiled.stale() == ["gateway/sessions/session.py changed after it was compiled"]


def test_a_changed_pxd_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's C types live in ``session.pxd``: a build made before the .pxd changed
    is as stale as one made before the .py did (here: a hash of the .py alone)."""
    source = Path(compiled.__file__).parents[1] / "sessions" / "session.py"
    assert source.with_suffix(".pxd").exists()
    py_only = hashlib.sha256(source.read_bytes()).hexdigest()
    manifest = tmp_path / "compiled_sources.json"
    manifest.write_text(json.dumps({"gateway.sessions.session": py_only}))
    monkeypatch.setattr(compiled, "MANIFEST", manifest)
    assert compiled.stale() == ["gateway/sessions/session.py changed after it was compiled"]
    manifest.write_text(json.dumps({"gateway.sessions.session": compiled.source_hash(source)}))
    assert not [line for line in compiled.stale() if "changed" in line]


def test_no_manifest_means_nothing_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled, "MANIFEST", tmp_path / "absent.json")
    assert compiled.compiled_modules() == {}
    assert compiled.stale() == []


def test_a_picows_upgrade_makes_the_transport_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The picows transport is compiled against picows' C declarations
    (``picows_server.pxd``): built with one picows and run with another, it is reported
    stale, and the report names picows."""
    source = Path(compiled.__file__).parents[1] / "transport" / "picows_server.py"
    assert compiled.BUILT_AGAINST_PICOWS in source.with_suffix(".pxd").read_bytes()
    manifest = tmp_path / "compiled_sources.json"
    name = "gateway.transport.picows_server"
    manifest.write_text(json.dumps({name: compiled.source_hash(source)}))
    monkeypatch.setattr(compiled, "MANIFEST", manifest)
    assert not [line for line in compiled.stale() if "changed" in line]
    monkeypatch.setattr(compiled, "picows_version", lambda: "9.9.9")
    assert compiled.stale() == [
        "gateway/transport/picows_server.py changed after it was compiled (or picows, now "
        "9.9.9, whose C declarations it is built against)"
    ]
