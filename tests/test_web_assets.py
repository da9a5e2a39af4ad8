"""The committed build of the trading page is the build of the committed sources, and the
front end's own checks pass: TypeScript's strict type check and the Vitest unit tests.

The freshness checks need only Python (``web/manifest.py``): a changed source without a
rebuild fails here.  The others need ``web/node_modules`` (``npm ci`` in ``web/``, which
``.ci/run`` does); without it they are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"


def _manifest_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_manifest", WEB / "manifest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


manifest = _manifest_module()


def _needs_node() -> None:
    if (WEB / "node_modules" / ".package-lock.json").is_file() and shutil.which("npx"):
        return
    reason = "web/node_modules is not installed: run `npm ci` in web/ (or web/build.sh)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _npx(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npx", "--no-install", *args],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "CI": "1"},
    )


def test_built_page_matches_its_sources() -> None:
    """The manifest's source hash is that of web/'s sources, and it lists exactly the built
    files there are, with their hashes: edit a source without web/build.sh and this fails."""
    assert manifest.problems() == []


def test_a_changed_source_makes_the_build_stale(tmp_path: Path) -> None:
    """The check notices a one-byte change to a source, a new source file, and a built
    file that is not the one built."""
    web = tmp_path / "web"
    shutil.copytree(WEB, web, ignore=shutil.ignore_patterns("node_modules", ".vite"))
    built = tmp_path / "built"
    shutil.copytree(manifest.BUILT, built)
    assert manifest.problems(web, built) == []
    main = web / "src" / "main.ts"
    main.write_text(main.read_text() + " ")
    assert "sources changed" in manifest.problems(web, built)[0]
    main.write_text(main.read_text()[:-1])
    (web / "src" / "extra.ts").write_text("export {};\n")
    assert manifest.problems(web, built) != []
    (web / "src" / "extra.ts").unlink()
    (built / "index.html").write_text("edited by hand")
    assert "not the ones the manifest lists" in manifest.problems(web, built)[0]


def test_node_modules_and_caches_are_not_committed() -> None:
    """git ignores web/node_modules and the test artifacts (screenshots)."""
    paths = ["web/node_modules/x", "web/.vite/x", "test-artifacts/web-phone.png"]
    result = subprocess.run(
        ["git", "check-ignore", "--verbose", "--non-matching", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode == 128:
        pytest.skip(f"not a git checkout: {result.stderr}")
    unignored = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert unignored == [], result.stdout


def test_typescript_type_check_is_clean() -> None:
    """tsc --noEmit, strict (web/tsconfig.json), over the sources and their tests."""
    _needs_node()
    result = _npx("tsc", "--noEmit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_vitest_unit_tests_pass() -> None:
    """The front end's unit tests (web/test/): book sequence and gaps, cumulative depth,
    exact decimals, login signatures, the account and the trades tape."""
    _needs_node()
    result = _npx("vitest", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout


def test_a_fresh_build_gives_the_committed_files(tmp_path: Path) -> None:
    """Building the committed sources again gives byte for byte the committed page."""
    _needs_node()
    out = tmp_path / "out"
    result = _npx("vite", "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn")
    assert result.returncode == 0, result.stdout + result.stderr
    assert manifest.built_files(out) == manifest.built_files(manifest.BUILT)
