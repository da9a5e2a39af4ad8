"""Which of the gateway's modules run compiled, and whether a build is stale.

``setup.py`` compiles the modules on an order's path with Cython as they are (its
``COMPILED_MODULES``); the extension it builds sits beside the ``.py`` and is what Python
imports.  So after a module's source is edited, the old build goes on running until
``pip install -e .`` runs again: an easy way to test code that is not the code on disk.  The
build records each compiled module's source hash in ``gateway/compiled_sources.json``; ``stale``
compares them, without importing anything, and the test suite and ``alatau serve`` use it
to say so.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "compiled_sources.json"
REBUILD = "pip install -e . (or ALATAU_PURE_PYTHON=1 pip install -e . to run them as Python)"


def compiled_modules() -> dict[str, str]:
    """The modules the last build compiled, with their sources' hashes ({} if none)."""
    try:
        data = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return {}
    return {str(module): str(digest) for module, digest in data.items()}


def is_extension(module: str) -> bool:
    """Whether ``module`` would be imported from a compiled extension."""
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


BUILT_AGAINST_PICOWS = b"cimport picows"
"""In a ``.pxd``: the module is compiled against picows' C declarations (its extension
types' layouts), so a build is stale once another picows is installed, too."""


def picows_version() -> str:
    try:
        return importlib.metadata.version("picows")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def source_hash(source: Path) -> str:
    """The hash of what a module is compiled from: its ``.py`` and, when it has one, its
    ``.pxd`` (the C types Cython reads beside it; editing it changes the build too), with
    the version of picows when the ``.pxd`` cimports it.  ``setup.py`` records it with each
    build (it loads this module from its file: keep it to the standard library)."""
    digest = hashlib.sha256(source.read_bytes())
    pxd = source.with_suffix(".pxd")
    if pxd.exists():
        declarations = pxd.read_bytes()
        digest.update(declarations)
        if BUILT_AGAINST_PICOWS in declarations:
            digest.update(picows_version().encode())
    return digest.hexdigest()


def stale() -> list[str]:
    """The compiled modules whose source changed since they were built, each with why."""
    found = []
    root = Path(__file__).resolve().parents[2]
    for module, digest in sorted(compiled_modules().items()):
        source = root.joinpath(*module.split(".")).with_suffix(".py")
        try:
            now = source_hash(source)
        except OSError:
            continue  # an installed wheel may carry no sources: nothing to go stale
        if now != digest:
            pxd = source.with_suffix(".pxd")
            also = (
                f" (or picows, now {picows_version()}, whose C declarations it is built against)"
                if pxd.exists() and BUILT_AGAINST_PICOWS in pxd.read_bytes()
                else ""
            )
            found.append(f"{source.relative_to(root)} changed after it was compiled{also}")
        elif not is_extension(module):
            found.append(f"{module} was compiled but its extension is missing")
    return found
