"""Build the Cython core of the matching engine, and compile the order path's Python.

`pip install -e .` compiles ``engine/_core/*.pyx`` into C extensions: the order book
(``book.pyx``) and the exchange's per-order path (``exchange.pyx``); and the journal's
flush thread (``gateway/storage/_flush.pyx``).  Set
``ENGINE_DEBUG=1`` to build with bounds checks and assertions on, for chasing
a crash in the core (slower; never for benchmarks).

It also compiles the gateway's modules on an order's path (``COMPILED_MODULES``) with
Cython as they are: the ``.py`` file stays the source (typed for mypy, read by newcomers),
and the extension built from it, ``session.cpython-311-*.so`` beside ``session.py``, is
what Python imports.  Same code, same behaviour (the whole test suite runs against the
compiled modules), about 15-20 % less CPU per order (``benchmarks/RESULTS.md``, "Issue 16:
the order path's Python compiled").  Annotations are not read as C types
(``annotation_typing=False``): a compiled module accepts exactly what the Python one does.
Where a class on the path is worth C fields, an augmenting ``.pxd`` beside its ``.py``
declares them (``gateway/sessions/session.pxd``: the session as an extension type, its
rate-limit buckets' doubles); the ``.py`` still reads and runs as plain Python.
Set ``ALATAU_PURE_PYTHON=1`` to skip them (a debugger, a profiler that wants Python frames).

Because the extension shadows the ``.py``, an edited module must be built again: the build
writes ``gateway/compiled_sources.json`` (each module's source hash, its ``.pxd``
included), and both the test suite (``tests/test_compiled_modules.py``) and ``alatau
serve`` (a warning) tell when a compiled module is older than its source.
"""

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ENGINE_DEBUG") == "1"
PURE_PYTHON = os.environ.get("ALATAU_PURE_PYTHON") == "1"

# The gateway's Python on an order's path, from the frame read to the answer written and
# the history fed (measured by ``python -m benchmarks.order_path --steps``).  Not the
# engine's ``exchange.py``: it is the reference the compiled exchange is tested against.
COMPILED_MODULES = [
    "gateway.transport.picows_server",
    "gateway.sessions.session",
    "gateway.sessions.ratelimit",
    "gateway.wire.protocol",
    "gateway.wire.views",
    "gateway.sequencer.venue",
    "gateway.sequencer.marketdata",
    "gateway.sequencer.tape",
    "gateway.hosts.local",
    "gateway.storage.journal",
    "gateway.storage.datadir",
    "gateway.storage.audit",
    "gateway.storage.history",
]
# Not compiled: modules run with ``python -m`` (an extension cannot be ``__main__``), the
# engine process (``gateway.hosts.process``) and the history writer's
# (``gateway.storage.history_process``).
MANIFEST = Path("gateway/compiled_sources.json")


def _source(module: str) -> Path:
    return Path(*module.split(".")).with_suffix(".py")


def _stale_check() -> ModuleType:
    """``gateway.app.compiled``, loaded from its file (the build may not have the project on
    ``sys.path``): the one definition of a module's source hash, which the stale-build
    checks compare with what this build records (a standard-library-only module)."""
    spec = importlib.util.spec_from_file_location(
        "_alatau_compiled", Path("gateway/app/compiled.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_manifest(modules: list[str]) -> None:
    """Each compiled module's source hash, for the stale-build checks (``gateway.app.compiled``)."""
    source_hash = _stale_check().source_hash  # a .py, its .pxd, the picows built against
    hashes = {m: source_hash(_source(m)) for m in modules}
    MANIFEST.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


extensions = [
    Extension(
        "engine._core.book",
        ["engine/_core/book.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
    Extension(
        "engine._core.exchange",
        ["engine/_core/exchange.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
    # An order's answer written as JSON bytes from the reports (gateway.sessions.session).
    Extension(
        "gateway.wire._answers",
        ["gateway/wire/_answers.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
    # A plain order.place / order.cancel read from its frame (gateway.sessions.session).
    Extension(
        "gateway.wire._intake",
        ["gateway/wire/_intake.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
    # The journal's flush thread (gateway.storage.journal): C, so it never takes the GIL.
    Extension(
        "gateway.storage._flush",
        ["gateway/storage/_flush.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
]

compiled_python = [] if PURE_PYTHON else COMPILED_MODULES
_write_manifest(compiled_python)

setup(
    # The C compiles run in parallel, one per core (a dozen modules: the longest step).
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": False,
            "initializedcheck": DEBUG,
            # cdivision stays off: C division truncates negatives, Python floors.
            "cdivision": False,
            "embedsignature": True,
        },
    )
    + cythonize(
        [
            Extension(
                module,
                [str(_source(module))],
                extra_compile_args=["-O0", "-g"] if DEBUG else ["-O2"],
            )
            for module in compiled_python
        ],
        language_level=3,
        nthreads=os.cpu_count() or 1,
        compiler_directives={
            # Python semantics exactly: annotations are for mypy, not C types.
            "annotation_typing": False,
            "binding": True,
            "embedsignature": True,
        },
    ),
)
