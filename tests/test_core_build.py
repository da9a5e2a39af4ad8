"""The order book imported is the compiled core, built from the current sources.

A stale build is the classic way to test yesterday's code: editing ``book.pyx`` changes
nothing until the extension is rebuilt.  These tests fail loudly when that happens.
"""

from __future__ import annotations

import ast
import importlib.machinery
from pathlib import Path

import pytest

import engine
from engine import OrderBook

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "engine" / "_core"
REBUILD = "rebuild it with `pip install -e .` from the repository root"


def _module_file() -> Path:
    module = importlib.import_module(OrderBook.__module__)
    assert module.__file__ is not None, f"{OrderBook.__module__} has no __file__"
    return Path(module.__file__).resolve()


def test_order_book_is_the_compiled_extension() -> None:
    """engine.OrderBook comes from a compiled extension module, not Python source."""
    path = _module_file()
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert path.name.endswith(suffixes), (
        f"engine.OrderBook is loaded from {path}, not a compiled extension (.so): {REBUILD}"
    )
    assert OrderBook is not engine.ReferenceBook


def test_extension_is_the_one_in_this_checkout() -> None:
    """The extension imported is the one built in this checkout's engine/_core."""
    path = _module_file()
    assert path.parent == CORE.resolve(), (
        f"engine.OrderBook is loaded from {path}, not from {CORE}: {REBUILD}"
    )


SOURCES = sorted(
    path
    for pattern in ("*.pyx", "*.pxd", "*.h")
    for path in CORE.glob(pattern)
    if path.name != "exchange.pyx"  # the compiled exchange's: its own extension, below
)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_extension_is_not_older_than_its_sources(source: Path) -> None:
    """The compiled book is at least as new as book.pyx and the .pxd/.h files it uses."""
    built = _module_file()
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than {source.relative_to(REPO)}: the compiled order book is "
        f"stale, {REBUILD}"
    )


def test_compiled_exchange_is_built_from_the_current_source() -> None:
    """engine._core.exchange (the compiled exchange) is an extension in this checkout, at
    least as new as exchange.pyx."""
    module = importlib.import_module("engine._core.exchange")
    assert module.__file__ is not None
    built = Path(module.__file__).resolve()
    assert built.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), built
    assert built.parent == CORE.resolve(), f"{built} is not in {CORE}: {REBUILD}"
    source = CORE / "exchange.pyx"
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than {source.relative_to(REPO)}: the compiled exchange is "
        f"stale, {REBUILD}"
    )


def test_book_pyx_is_among_the_checked_sources() -> None:
    """The freshness check covers engine/_core/book.pyx."""
    assert CORE / "book.pyx" in SOURCES


def _stub_names() -> set[str]:
    tree = ast.parse((CORE / "book.pyi").read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert cls.name == "OrderBook"
    return {node.name for node in cls.body if isinstance(node, ast.FunctionDef)}


def test_stub_names_exactly_the_public_methods_of_the_compiled_book() -> None:
    """engine/_core/book.pyi declares every public method and property the compiled
    OrderBook has, and nothing it lacks (its dunders included, bar object's own and
    Cython's pickling machinery)."""
    compiled = {
        name
        for name in dir(OrderBook)
        if not name.startswith("_")
        or (name.startswith("__") and name not in dir(object) and "pyx" not in name)
    } - {"__setstate__"}  # Cython's pickling hook: it only refuses to pickle the pointers
    stub = _stub_names() - {"__init__"}
    assert stub == compiled, (
        f"book.pyi lacks {sorted(compiled - stub)}, names {sorted(stub - compiled)} the "
        "compiled class has not"
    )
