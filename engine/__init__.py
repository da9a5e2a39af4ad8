"""Alatau Exchange matching engine (placeholder while the core is being written)."""
