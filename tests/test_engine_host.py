"""The engine-host seam (``gateway.sequencer.host``) and the server's defaults.

* Both hosts start the engine the same way (``gateway.hosts.start``), and ``LocalHost``
  closes the data directory it opened when its venue stops.
* The server's defaults are written once: the command line takes them from
  ``ServeOptions``, which takes the engine's from ``EngineSettings``; ``Storage``'s own
  parameter defaults (kept for the tools and tests that open a data directory directly)
  must say the same.
"""

from __future__ import annotations

import argparse
import inspect

from gateway.app.serve import DATA_DIR, ServeOptions, add_serve_arguments, options_from_args
from gateway.hosts.local import LocalHost
from gateway.hosts.start import ENGINE_DEFAULTS, EPHEMERAL, EngineSettings, start_engine
from gateway.sequencer.venue import Venue
from gateway.storage.datadir import Storage
from gateway.storage.sealing import SecretBox

from .gateway_harness import async_test


def test_the_command_line_defaults_are_the_options_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    options = options_from_args(parser.parse_args([]))
    defaults = ServeOptions()
    assert options.data_dir == DATA_DIR  # the one difference: the CLI keeps its state
    for name in ("host", "port", "durability", "snapshot_every", "venue_file", "production"):
        assert getattr(options, name) == getattr(defaults, name), name
    for name in vars(defaults.limits):
        assert getattr(options.limits, name) == getattr(defaults.limits, name), name
    assert defaults.engine_settings() == ENGINE_DEFAULTS


def test_storage_defaults_are_the_engine_settings_defaults() -> None:
    parameters = inspect.signature(Storage).parameters
    assert parameters["mode"].default == ENGINE_DEFAULTS.durability
    assert parameters["snapshot_every"].default == ENGINE_DEFAULTS.snapshot_every


def test_in_memory_the_engine_starts_at_seq_0() -> None:
    engine = start_engine(EngineSettings(), SecretBox.random())
    assert (engine.storage, engine.last_seq, engine.recovered) == (None, 0, EPHEMERAL)
    assert engine.exchange.markets


@async_test
async def test_a_local_host_closes_the_data_directory_it_opened(tmp_path) -> None:
    host = LocalHost.start(EngineSettings(data_dir=str(tmp_path)), None)
    assert host.last_seq == 0
    venue = Venue(host)
    venue.start()
    await venue.stop()
    # closed with a final snapshot, the lock released: another storage opens it at once
    storage = Storage(tmp_path, lock_wait_s=0.1)
    _, last_seq, recovered = storage.recover(host.exchange.chain, lambda: host.exchange)
    storage.close(final_snapshot=False)
    assert last_seq == 0 and "0 journal records replayed" in recovered, recovered


def test_a_started_server_freezes_its_start_up_and_collects_young_objects_less_often() -> None:
    import gc

    from gateway.hosts.start import COLLECTOR_THRESHOLD, settle_collector

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's default (a server started in-process changed it)
    frozen = gc.get_freeze_count()
    try:
        kept = [object() for _ in range(10)] + [[] for _ in range(10)]  # tracked: lists
        settle_collector()
        assert gc.get_threshold() == (COLLECTOR_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() >= frozen + 10
        del kept
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
