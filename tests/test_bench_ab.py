"""``python -m benchmarks.ab``: it refuses a tree whose code would not be what runs, and
its summary compares the sides by their medians and pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.ab import Run, TreeError, check_tree, summary

ROOT = Path(__file__).resolve().parent.parent


def test_the_summary_compares_medians_and_counts_the_pairs_won() -> None:
    runs = [
        Run("before", 30_000, 3.0, 10.0, 25.0),
        Run("after", 45_000, 2.5, 7.0, 19.0),
        Run("after", 40_000, 2.6, 8.0, 20.0),
        Run("before", 42_000, 2.8, 9.0, 22.0),
        Run("before", 33_000, 3.1, 11.0, 24.0),
        Run("after", 47_000, 2.4, 6.5, 18.0),
    ]
    lines = summary(runs)
    assert lines[0].startswith("before  orders/s median 33,000 (30,000-42,000)")
    assert "p99 10.00 ms" in lines[0] and "gateway 24.0 µs/order" in lines[0]
    assert lines[1].startswith("after   orders/s median 45,000 (40,000-47,000)")
    assert lines[2] == "after ahead in 2 of 3 pairs; medians after / before = 1.36"


def test_a_built_tree_passes_the_check() -> None:
    check_tree(ROOT)  # the suite runs against the built repository


def test_a_directory_that_is_not_a_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TreeError, match="not a source tree"):
        check_tree(tmp_path)


def test_a_tree_without_its_compiled_core_is_refused(tmp_path: Path) -> None:
    """Sources without the build: measuring it would run nothing, or another tree's code."""
    ignore = shutil.ignore_patterns("*.so", "*.c", "__pycache__")
    for package in ("engine", "gateway"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    with pytest.raises(TreeError, match="build_ext --inplace"):
        check_tree(tmp_path)
