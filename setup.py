"""Build the Cython core of the matching engine.

`pip install -e .` compiles ``engine/_core/*.pyx`` into C extensions: the order book
(``book.pyx``) and the exchange's per-order path (``exchange.pyx``); and the journal's
flush thread (``gateway/storage/_flush.pyx``).  Set
``ENGINE_DEBUG=1`` to build with bounds checks and assertions on, for chasing
a crash in the core (slower; never for benchmarks).
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ENGINE_DEBUG") == "1"

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
    # The journal's flush thread (gateway.storage.journal): C, so it never takes the GIL.
    Extension(
        "gateway.storage._flush",
        ["gateway/storage/_flush.pyx"],
        language="c",
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    ),
]

setup(
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
    ),
)
