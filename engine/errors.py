"""Exceptions of the engine package.

What a client did wrong is never an exception: it is a rejection event with a code from
``engine.reject``.  Exceptions are for misuse by the calling code and for broken invariants::

    EngineError
     ├── ConfigError          bad market or venue configuration
     ├── BookIntegrityError   an order book invariant does not hold (a bug)
     └── CoreNotBuiltError    the compiled Cython core is missing or stale
"""


class EngineError(Exception):
    """Base class of every exception the engine raises on purpose."""


class ConfigError(EngineError):
    """The operator's configuration (markets, venue) is invalid."""


class BookIntegrityError(EngineError):
    """An order book invariant is broken; the book must not be used further."""


class CoreNotBuiltError(EngineError, ImportError):
    """The Cython core is not compiled: run ``pip install -e .`` again."""
