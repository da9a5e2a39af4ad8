"""The build manifest of the trading page: which sources the committed build was made from.

``python3 web/manifest.py write`` (run by ``web/build.sh`` after ``vite build``) records, in
``gateway/transport/web-static/manifest.json``, a hash of the front-end sources (``SOURCES``:
what decides the built files) and a hash of each built file.  ``check`` exits 1 when the
sources or the built files no longer match it; ``tests/test_web_assets.py`` runs the same
check, so stale assets fail the suite.  Standard library only: it runs without Node.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
BUILT = WEB.parent / "gateway" / "transport" / "web-static"
MANIFEST = BUILT / "manifest.json"
# What the build reads: the page, its code and styles, the tools' configuration and the
# exact versions of every package (package-lock.json).  Tests and this script are not inputs.
SOURCES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"]
SOURCE_DIRS = ["src"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(web: Path = WEB) -> list[str]:
    """The source files, as paths relative to ``web/`` with ``/``, sorted."""
    found = [name for name in SOURCES if (web / name).is_file()]
    for folder in SOURCE_DIRS:
        found += [p.relative_to(web).as_posix() for p in (web / folder).rglob("*") if p.is_file()]
    return sorted(found)


def sources_hash(web: Path = WEB) -> str:
    """One hash over every source file's path and content."""
    digest = hashlib.sha256()
    for name in source_files(web):
        digest.update(f"{name}\0{_sha256(web / name)}\n".encode())
    return digest.hexdigest()


def built_files(built: Path = BUILT) -> dict[str, str]:
    """Each built file (the manifest excepted) with its hash, by path relative to ``built``."""
    return {
        p.relative_to(built).as_posix(): _sha256(p)
        for p in sorted(built.rglob("*"))
        if p.is_file() and p != built / MANIFEST.name
    }


def manifest(web: Path = WEB, built: Path = BUILT) -> dict[str, object]:
    return {"sources_sha256": sources_hash(web), "files": built_files(built)}


def problems(web: Path = WEB, built: Path = BUILT) -> list[str]:
    """Why the committed build does not match the sources (empty: it does)."""
    path = built / MANIFEST.name
    if not path.is_file():
        return [f"{path} is missing: run web/build.sh"]
    recorded = json.loads(path.read_text())
    found = []
    if recorded.get("sources_sha256") != sources_hash(web):
        found.append("the front-end sources changed since the last build: run web/build.sh")
    if recorded.get("files") != built_files(built):
        found.append(f"the built files in {built} are not the ones the manifest lists")
    return found


def main(argv: list[str]) -> int:
    if argv == ["write"]:
        MANIFEST.write_text(json.dumps(manifest(), indent=2, sort_keys=True) + "\n")
        return 0
    if argv == ["check"]:
        for problem in problems():
            print(problem, file=sys.stderr)
        return 1 if problems() else 0
    print("usage: python3 web/manifest.py write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
