"""The audit trail: every check-chain decision is on disk with its command's seq, and a
crash that loses or damages the trail's tail is repaired from the journal at startup."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from engine.licensing import CheckChain
from engine.reports import Audit, OrderReport
from gateway.storage.audit import list_audit_files, read_lines
from gateway.storage.datadir import Storage, list_segments
from tests.kit.commands import random_command, soak_venue
from tests.kit.venues import TS0

from .gateway_harness import async_test, connect, serving
from .test_storage import recover


def run_audited(storage: Storage, exchange, count: int, seed: int, batch: int = 7) -> list:
    """Execute random commands as the sequencer does (append each, sync per batch) and
    return the decisions they made, as the trail should hold them."""
    rnd = random.Random(seed)
    open_orders: list = []
    expected = []
    for index in range(count):
        command = random_command(rnd, TS0 + index, open_orders)
        reports = exchange.execute(command)
        storage.append(command, reports)
        seq = storage.journal.last_seq
        for report in reports:
            if isinstance(report, OrderReport) and report.status == "new":
                open_orders.append((report.participant_id, report.market, report.order_id))
            if isinstance(report, Audit):
                expected.append(line_of(seq, report))
        if index % batch == batch - 1:
            storage.sync()
            storage.write_trail()  # what the server does once the batch's answers are out
    storage.sync()
    storage.write_trail()
    return expected


def line_of(seq: int, audit: Audit) -> dict:
    return {
        "seq": seq,
        "ts": audit.ts,
        "participant_id": audit.participant_id,
        "market": audit.market,
        "order_id": audit.order_id,
        "client_order_id": audit.client_order_id,
        "action": audit.action,
        "decision": audit.decision,
        "check": audit.check,
        "code": audit.code,
    }


def trail(data_dir: Path, **filters) -> list[dict]:
    return [json.loads(line) for line in read_lines(data_dir, **filters)]


def test_every_decision_is_on_the_trail_with_its_commands_seq(tmp_path) -> None:
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 400, seed=1)
    assert {line["decision"] for line in expected} == {"accept", "reject"}
    assert {line["action"] for line in expected} == {"place", "amend"}
    assert trail(tmp_path) == expected  # written once the batch is durable, before close
    storage.close()
    assert trail(tmp_path) == expected


def test_decisions_of_commands_never_synced_are_not_on_the_trail(tmp_path) -> None:
    """The trail names only commands the journal made durable."""
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 200, seed=2)
    rnd = random.Random(3)
    for index in range(50):  # executed and appended, but the crash comes before the sync
        command = random_command(rnd, TS0 + 10_000 + index, [])
        storage.append(command, exchange.execute(command))
    storage.write_trail()
    storage.close(final_snapshot=False)
    assert trail(tmp_path) == expected
    _, _, last_seq = recover(tmp_path)
    assert last_seq == 200
    assert trail(tmp_path) == expected


def _cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _hole(path: Path) -> None:
    """A page written back before an earlier one: zeros in the middle, lines after them."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300] = bytes(300)
    path.write_bytes(bytes(data))


def _lost(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage", [_cut_mid_line, _hole, _lost], ids=["cut", "hole", "lost"])
def test_a_damaged_trail_tail_is_written_again_from_the_journal(tmp_path, damage) -> None:
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 400, seed=4)
    storage.close(final_snapshot=False)  # as a crash leaves it
    (audit_file,) = list_audit_files(tmp_path)
    damage(audit_file)
    storage, _, last_seq = recover(tmp_path)
    assert last_seq == 400
    assert trail(tmp_path) == expected
    storage.close()


@pytest.mark.parametrize(
    "forked",
    [False, pytest.param(True, marks=pytest.mark.skipif(not hasattr(os, "fork"), reason="fork"))],
    ids=["in-process", "forked"],
)
def test_the_trail_across_snapshots_crashes_and_restarts(tmp_path, forked: bool) -> None:
    """A new file at each snapshot (flushed by the forked snapshot writer, or in-process); a
    crash after snapshots loses nothing of the trail even when the journal before the
    snapshots is gone."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=120, background_snapshots=forked)
    expected = []
    for seed in range(5):
        expected += run_audited(storage, exchange, 100, seed=10 + seed)
        storage.checkpoint()
        storage.wait_for_snapshot()
    storage.close(final_snapshot=False)
    assert len(list_audit_files(tmp_path)) >= 3
    assert list_segments(tmp_path)[0].name != "journal-00000000000000000001.log"  # pruned
    _cut_mid_line(list_audit_files(tmp_path)[-1])
    storage, exchange, last_seq = recover(tmp_path, snapshot_every=120)
    assert last_seq == 500
    assert trail(tmp_path) == expected
    expected += run_audited(storage, exchange, 100, seed=20)
    storage.close()
    assert trail(tmp_path) == expected


def test_a_clean_restart_neither_repeats_nor_misses_a_decision(tmp_path, caplog) -> None:
    """After a clean stop the final snapshot covers everything, even commands that made no
    decision (cancels, deposits) after the last one that did: the restart writes nothing
    again and reports nothing missing."""
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 300, seed=21)
    rnd = random.Random(22)
    for index in range(5):  # deposits and withdrawals: no decision to audit
        command = random_command(rnd, TS0 + 5_000 + index, [])
        while type(command).__name__ not in ("Deposit", "Withdraw"):
            command = random_command(rnd, TS0 + 5_000 + index, [])
        storage.append(command, exchange.execute(command))
    storage.sync()
    storage.close()
    for restart in range(2):
        storage, exchange, last_seq = recover(tmp_path)
        assert last_seq == 305 + 50 * restart
        expected += run_audited(storage, exchange, 50, seed=23 + last_seq)
        storage.close()
    assert trail(tmp_path) == expected
    assert "no audit trail" not in caplog.text and "damaged" not in caplog.text


def test_decisions_past_the_journal_are_cut(tmp_path) -> None:
    """With buffered durability a power cut can keep trail lines whose journal records were
    lost: the trail must not name commands that did not survive."""
    storage, exchange, _ = recover(tmp_path, mode="buffered")
    expected = run_audited(storage, exchange, 300, seed=5)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])  # the journal's second half never reached disk
    storage, _, last_seq = recover(tmp_path, mode="buffered")
    storage.close(final_snapshot=False)
    assert 0 < last_seq < 300
    assert trail(tmp_path) == [line for line in expected if line["seq"] <= last_seq]


def test_alatau_audit_prints_the_trail_filtered(tmp_path) -> None:
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 300, seed=6)
    storage.close()
    command = [sys.executable, "-m", "gateway.app.cli", "audit", str(tmp_path)]

    def lines(*options: str) -> list[dict]:
        done = subprocess.run(command + list(options), capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    assert lines() == expected
    rejects = [line for line in expected if line["decision"] == "reject"]
    assert rejects and lines("--decision", "reject") == rejects
    who = expected[0]["participant_id"]
    assert lines("--participant", who) == [x for x in expected if x["participant_id"] == who]
    middle = expected[len(expected) // 2]["seq"]
    assert lines("--from-seq", str(middle)) == [x for x in expected if x["seq"] >= middle]
    empty = subprocess.run([*command[:-1], str(tmp_path / "none")], capture_output=True)
    assert empty.returncode == 1 and b"no audit trail" in empty.stderr


def test_off_durability_keeps_no_trail(tmp_path) -> None:
    storage, exchange, _ = recover(tmp_path, mode="off")
    run_audited(storage, exchange, 100, seed=7)
    storage.close()
    assert not list_audit_files(tmp_path)


def test_recovery_of_a_directory_written_before_the_trail_starts_one(tmp_path, caplog) -> None:
    """A data directory from before the trail existed: the decisions the journal still has
    are written, and the ones it no longer has are reported missing, not invented."""
    storage = Storage(tmp_path, snapshot_every=100, background_snapshots=False)
    exchange, _, _ = storage.recover(CheckChain(), soak_venue)
    storage.trail.close()  # as the old server wrote it: a journal and snapshots only
    storage.trail = None
    run_audited(storage, exchange, 250, seed=8)
    storage.checkpoint()
    storage.close(final_snapshot=False)
    for path in list_audit_files(tmp_path):
        path.unlink()
    storage, _, last_seq = recover(tmp_path)
    storage.close()
    assert last_seq == 250
    assert "no audit trail for commands 1..250" in caplog.text


@pytest.mark.parametrize("engine_process", [False, True], ids=["one-process", "engine-process"])
@async_test
async def test_orders_through_the_gateway_are_on_the_trail_when_answered(
    tmp_path, engine_process: bool
) -> None:
    """Once an order is answered, its decision reaches the trail (written right after the
    answers): accepted with the order id the client got, refused with the code it got."""
    async with serving(tmp_path, engine_process=engine_process) as (url, clients):
        bob = await connect(url, clients, "bob")
        placed = await bob.ok(
            "order.place", {"market": "BTC-KZT", "side": "buy", "price": "44000000", "qty": "0.01"}
        )
        refused = await bob.error(
            "order.place", {"market": "BTC-KZT", "side": "buy", "price": "44000000", "qty": "900"}
        )
        for _ in range(100):
            mine = trail(tmp_path, participant="bob")
            if len(mine) == 2:
                break
            await asyncio.sleep(0.01)
    assert [(x["decision"], x["order_id"], x["code"]) for x in mine] == [
        ("accept", placed["order_id"], None),
        ("reject", None, refused["code"]),
    ]
    assert trail(tmp_path, participant="bob") == mine  # and after a clean stop


def test_lines_after_the_snapshot_recovery_starts_from_are_written_again(tmp_path) -> None:
    """If the snapshot that rotated a file never got written (its writer failed, or the
    power went first), the old file's later lines may be damaged: recovery starts from the
    snapshot before, and every line after that one comes again from the journal."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=150, background_snapshots=False)
    expected = run_audited(storage, exchange, 200, seed=30)
    storage.checkpoint()  # a snapshot at 200: the trail goes on in a new file
    expected += run_audited(storage, exchange, 100, seed=31)
    storage.close(final_snapshot=False)
    first, second = list_audit_files(tmp_path)
    assert second.name == "audit-00000000000000000201.jsonl"
    (tmp_path / "snapshot-00000000000000000200.bin").unlink()  # as if never written
    _hole(first)
    storage, _, last_seq = recover(tmp_path)
    storage.close(final_snapshot=False)
    assert last_seq == 300
    assert trail(tmp_path) == expected
    assert list_audit_files(tmp_path) == [first]


def test_the_trail_is_on_disk_before_the_snapshot_that_covers_it(tmp_path, monkeypatch) -> None:
    """Once a snapshot exists the journal before it may go, and with it the means to write
    the trail again: so the trail's file is flushed first (in-process snapshots)."""
    import gateway.storage.datadir as storage_module

    events: list[str] = []
    fsync_path, write_snapshot = storage_module.fsync_path, storage_module._write_snapshot

    def fsync(path: Path) -> None:
        events.append(f"fsync {path.name}")
        fsync_path(path)

    def snapshot(*args):
        events.append("snapshot")
        return write_snapshot(*args)

    monkeypatch.setattr(storage_module, "fsync_path", fsync)
    monkeypatch.setattr(storage_module, "_write_snapshot", snapshot)
    storage, exchange, _ = recover(tmp_path, snapshot_every=50, background_snapshots=False)
    run_audited(storage, exchange, 60, seed=32)
    storage.checkpoint()
    storage.close(final_snapshot=False)
    at = events.index("snapshot")
    assert "fsync audit-00000000000000000001.jsonl" in events[:at]


def test_a_failed_trail_write_stops_acknowledging_and_loses_nothing(tmp_path, monkeypatch):
    """A full disk on the trail: the venue must stop (the next sync raises, as for the
    journal), and after a restart the trail is whole again from the journal."""
    import gateway.storage.audit as audit_module

    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 100, seed=33)
    real_write = os.write

    def full(fd: int, data) -> int:
        raise OSError(28, "No space left on device")

    more = run_audited_without_writing(storage, exchange, 50, seed=34)
    monkeypatch.setattr(audit_module.os, "write", full)

    async def server_turn() -> None:
        storage.sync()  # schedules the trail's write after this turn, which fails
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(server_turn())
    with pytest.raises(OSError):
        storage.sync()
    monkeypatch.setattr(audit_module.os, "write", real_write)
    storage.close(final_snapshot=False)
    assert len(trail(tmp_path)) < len(expected + more)
    storage, _, last_seq = recover(tmp_path)
    storage.close(final_snapshot=False)
    assert last_seq == 150
    assert trail(tmp_path) == expected + more


def run_audited_without_writing(storage: Storage, exchange, count: int, seed: int) -> list:
    """As ``run_audited``, the commands appended but neither synced nor written."""
    rnd = random.Random(seed)
    expected = []
    for index in range(count):
        command = random_command(rnd, TS0 + 50_000 + index, [])
        reports = exchange.execute(command)
        storage.append(command, reports)
        expected += [line_of(storage.journal.last_seq, r) for r in reports if type(r) is Audit]
    return expected


def test_alatau_audit_skips_and_reports_a_damaged_line(tmp_path) -> None:
    storage, exchange, _ = recover(tmp_path)
    expected = run_audited(storage, exchange, 100, seed=35)
    storage.close()
    first = list_audit_files(tmp_path)[0]
    lines = first.read_bytes().splitlines(keepends=True)
    lines[3] = b"{not json}\n"
    first.write_bytes(b"".join(lines))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", "audit", str(tmp_path)], capture_output=True
    )
    assert done.returncode == 1
    assert b"damaged line" in done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert printed == expected[:3] + expected[4:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked snapshots")
def test_a_failed_snapshot_childs_flush_is_done_by_the_next_snapshot(tmp_path, monkeypatch):
    """The trail file a snapshot child should have flushed, when the child failed first,
    is flushed by the next snapshot before it is written: else a power cut could lose
    lines that no replay would write again."""
    import gateway.storage.datadir as storage_module

    parent = os.getpid()
    log = tmp_path.parent / f"{tmp_path.name}-fsyncs.txt"
    real_fsync = storage_module.fsync_path
    child_fails = [True]

    def fsync(path: Path) -> None:
        if child_fails[0] and os.getpid() != parent and path.name.startswith("audit-"):
            raise OSError(5, "Input/output error")  # the first child dies here
        with open(log, "a") as out:
            out.write(f"{path.name}\n")
        real_fsync(path)

    monkeypatch.setattr(storage_module, "fsync_path", fsync)
    storage, exchange, _ = recover(tmp_path, snapshot_every=100, background_snapshots=True)
    run_audited(storage, exchange, 150, seed=40)
    storage.checkpoint()  # the child fails: no snapshot at 150
    storage.wait_for_snapshot()
    assert not (tmp_path / "snapshot-00000000000000000150.bin").exists()
    child_fails[0] = False
    log.write_text("")
    run_audited(storage, exchange, 150, seed=41)
    storage.checkpoint()  # this one succeeds, and flushes both files first
    storage.wait_for_snapshot()
    storage.close(final_snapshot=False)
    flushed = set(log.read_text().split())
    assert {"audit-00000000000000000001.jsonl", "audit-00000000000000000151.jsonl"} <= flushed


def test_damaged_lines_before_the_snapshot_are_skipped_not_cut_with_the_rest(tmp_path, caplog):
    """Media damage in lines the snapshot covers: they are lost (reported), but the good
    lines after them stay, and the later ones come again from the journal."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=50, background_snapshots=False)
    expected = run_audited(storage, exchange, 120, seed=42)
    storage.checkpoint()  # snapshot at 120: a new file starts at 121
    expected += run_audited(storage, exchange, 30, seed=43)
    storage.close(final_snapshot=False)
    first, second = list_audit_files(tmp_path)
    second.unlink()  # as if its name never reached the disk
    lines = first.read_bytes().splitlines(keepends=True)
    lines[5] = b"\x00" * (len(lines[5]) - 1) + b"\n"
    first.write_bytes(b"".join(lines))
    storage, _, last_seq = recover(tmp_path)
    storage.close(final_snapshot=False)
    assert last_seq == 150
    assert trail(tmp_path) == expected[:5] + expected[6:]
    assert "1 damaged line(s) among the decisions up to seq 120" in caplog.text


def test_a_damaged_last_line_the_snapshot_may_cover_is_reported(tmp_path, caplog) -> None:
    """A damaged line after the last good one of a file that holds lines the snapshot
    covers may have been one of them: it cannot be written again, so it is reported."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=50, background_snapshots=False)
    expected = run_audited(storage, exchange, 120, seed=44)
    storage.checkpoint()
    storage.close(final_snapshot=False)
    first, second = list_audit_files(tmp_path)
    second.unlink()
    lines = first.read_bytes().splitlines(keepends=True)
    lines[-1] = b"\x00" * (len(lines[-1]) - 1) + b"\n"
    first.write_bytes(b"".join(lines))
    storage, _, _ = recover(tmp_path)
    storage.close(final_snapshot=False)
    assert trail(tmp_path) == expected[:-1]
    assert "(and 1 that may be)" in caplog.text
