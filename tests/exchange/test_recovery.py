"""The journal and snapshots: the state after a restart is exactly the state the journal records.

Cut points, torn tails at every byte, damage in the middle, a full disk, and kill -9 under load.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange import (
    Cancel,
    JournalCorrupt,
    Matcher,
    Place,
    Rejected,
    Venue,
    generate,
    parse_symbols,
    state_hash,
)
from exchange._journal import decode, encode, scan
from tests.support.programs import Proc
from tests.support.venue_load import SEED, SYMBOLS

SYMBOL_SPECS = parse_symbols(SYMBOLS)


def _expected_hash(seq: int, commands: int) -> str:
    """The state hash after the first ``seq`` accepted commands of the load's stream."""
    matcher = Matcher(list(SYMBOL_SPECS))
    accepted = 0
    for command, time in generate(commands, seed=SEED, depth=200):
        if accepted == seq:
            break
        if type(matcher.apply(command, time)[0]) is not Rejected:
            accepted += 1
    assert accepted == seq, f"the stream has only {accepted} accepted commands"
    return state_hash(matcher, seq)


def _run(folder: Path, commands: list, *, commit_every: int = 1, snapshot_every: int = 10**9):
    venue = Venue.open(folder, SYMBOL_SPECS, snapshot_every=snapshot_every)
    for n, (command, time) in enumerate(commands, 1):
        venue.submit(command, time)
        if n % commit_every == 0:
            venue.commit()
    return venue


@given(st.sampled_from(["GTC", "IOC", "FOK"]), st.integers(1, 2**62), st.integers(0, 2**62))
def test_a_record_reads_back_as_written(tif: str, quantity: int, price: int) -> None:
    for command in (
        Place("BTC-USDT", "SELL", "LIMIT", tif, price or 1, quantity, "c-1"),  # type: ignore[arg-type]
        Place("BTC-USDT", "BUY", "MARKET", tif, None, quantity, None),  # type: ignore[arg-type]
        Cancel(quantity),
    ):
        record = encode(9, [(-5, command), (7, Cancel(3))])
        assert decode(record[8:]) == [(9, -5, command), (10, 7, Cancel(3))]


def test_the_same_commands_give_the_same_events_byte_for_byte() -> None:
    stream = generate(20_000, seed=3)

    def run() -> list[str]:
        matcher = Matcher(["BTC-USDT"])
        return [repr(matcher.apply(command, time)) for command, time in stream]

    assert run() == run()


def _copy_as_a_crash_leaves_it(folder: Path, to: Path) -> None:
    """The folder's files now; a snapshot child may be writing or dropping files meanwhile, so
    a file that vanished between the listing and the copy is simply not there."""
    to.mkdir()
    for path in folder.iterdir():
        if path.suffix != ".lock":
            with contextlib.suppress(FileNotFoundError):
                shutil.copy2(path, to / path.name)


def test_snapshot_plus_journal_gives_the_live_hash_at_random_cut_points(tmp_path: Path) -> None:
    stream = generate(6000, seed=11, depth=100)
    cuts = sorted(random.Random(5).sample(range(1, len(stream)), 6))
    live = tmp_path / "live"
    venue = Venue.open(live, SYMBOL_SPECS, snapshot_every=700)
    expected = {}
    for n, (command, time) in enumerate(stream, 1):
        venue.submit(command, time)
        if n % 5 == 0 or n in cuts:
            venue.commit()
        if n in cuts:  # what a crash right here would leave on disk
            _copy_as_a_crash_leaves_it(live, tmp_path / f"cut{n}")
            expected[n] = (venue.seq, venue.state_hash())
    venue.close()
    assert list(live.glob("snapshot-*.json")), "snapshots were taken"
    for n, (seq, digest) in expected.items():
        with Venue.open(tmp_path / f"cut{n}", SYMBOL_SPECS) as again:
            assert (again.seq, again.state_hash()) == (seq, digest), f"cut after command {n}"
    with Venue.open(live, SYMBOL_SPECS) as again:
        assert again.seq == venue.seq


def test_a_journal_cut_at_every_byte_of_its_last_record_recovers_the_prefix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = generate(300, seed=2, depth=30)
    whole = tmp_path / "whole"
    venue = _run(whole, stream[:-1])
    before = (venue.seq, venue.state_hash())
    venue.close(snapshot=False)
    size_before = (whole / "journal.bin").stat().st_size
    venue = _run(whole, stream[-1:])
    assert venue.seq == before[0] + 1
    venue.close(snapshot=False)
    journal = (whole / "journal.bin").read_bytes()
    assert len(journal) > size_before
    caplog.set_level(logging.WARNING)
    for cut in range(size_before, len(journal)):
        folder = tmp_path / f"c{cut}"
        folder.mkdir()
        shutil.copy(whole / "symbols.json", folder)
        (folder / "journal.bin").write_bytes(journal[:cut])
        caplog.clear()
        with Venue.open(folder, SYMBOL_SPECS) as again:
            assert (again.seq, again.state_hash()) == before, f"cut at byte {cut}"
            assert (cut == size_before) != any("torn" in r.message for r in caplog.records)
            again.submit(*stream[-1])  # the venue goes on, appending after the cut
        assert (folder / "journal.bin").read_bytes() == journal, "the same record, rewritten"
        shutil.rmtree(folder)


def test_a_damaged_record_before_the_tail_names_the_file_and_offset(tmp_path: Path) -> None:
    venue = _run(tmp_path, generate(50, seed=4, depth=10))
    venue.close(snapshot=False)
    path = tmp_path / "journal.bin"
    entries, offsets, _ = scan(path)
    assert len(offsets) == len(entries) > 20, "one record a commit"
    data = bytearray(path.read_bytes())
    victim = offsets[20]
    data[victim + 12] ^= 0x40  # a bit flipped inside record 21's payload
    path.write_bytes(data)
    with pytest.raises(JournalCorrupt) as caught:
        Venue.open(tmp_path, SYMBOL_SPECS)
    assert caught.value.offset == victim
    assert str(caught.value).startswith(f"journal {path} is damaged at offset {victim}")


def test_a_full_disk_leaves_the_command_unacknowledged_and_the_venue_consistent(
    tmp_path: Path,
) -> None:
    args = [str(tmp_path), "20000", "--batch", "37", "--file-limit", "60000"]
    proc = Proc("tests.support.venue_load", args)
    assert proc.wait() == 3, proc.stderr()
    line = proc.wait_log(r"write failed durable=\d+ state_hash=\w+")
    durable = int(line.split("durable=")[1].split()[0])
    digest = line.split("state_hash=")[1].strip()
    acked = [int(x.split()[-1]) for x in proc.lines if x.startswith("acked")]
    assert acked and acked[-1] == durable, "the failed batch was never acknowledged"
    assert (tmp_path / "journal.bin").stat().st_size <= 60000
    assert digest == _expected_hash(durable, 20000), "the rebuilt state is the journal's"
    with Venue.open(tmp_path, SYMBOL_SPECS) as again:
        assert (again.seq, again.state_hash()) == (durable, digest)


def test_kill_9_under_load_recovers_exactly_the_acknowledged_prefix(tmp_path: Path) -> None:
    batch = 25
    proc = Proc("tests.support.venue_load", [str(tmp_path), "100000", "--batch", str(batch)])
    proc.wait_log(r"acked \d+", count=random.Random().randrange(40, 200))
    proc.signal(signal.SIGKILL)
    proc.wait()
    acked = max(int(x.split()[-1]) for x in proc.lines if x.startswith("acked"))
    with Venue.open(tmp_path, SYMBOL_SPECS) as again:
        seq = again.seq
        # Everything acknowledged is there; at most the batch in flight came with it.
        assert acked <= seq <= acked + batch, (acked, seq)
        assert again.state_hash() == _expected_hash(seq, 100000)
