"""Alatau Exchange matching engine: sans-I/O, integers only, deterministic.

The public API is what this module exports.  The order book is the compiled Cython core
(``engine._core.book``); there is deliberately no pure-Python fallback at import time: a
missing or broken build is a loud ``CoreNotBuiltError``, never a silent slow engine.  The
plain-Python ``ReferenceBook`` exists as the test oracle and benchmark baseline only.
"""

from .errors import BookIntegrityError, ConfigError, CoreNotBuiltError, EngineError
from .types import OrderType, SelfTradePrevention, Side, TimeInForce

try:
    from ._core.book import OrderBook
except ImportError as exc:  # pragma: no cover - exercised by a fresh checkout without a build
    raise CoreNotBuiltError(
        "the compiled order book (engine._core.book) is missing or broken: "
        "build it with `pip install -e .` from the repository root "
        f"(import said: {exc})"
    ) from exc

from .reference import ReferenceBook

__all__ = [
    "BookIntegrityError",
    "ConfigError",
    "CoreNotBuiltError",
    "EngineError",
    "OrderBook",
    "OrderType",
    "ReferenceBook",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
]
