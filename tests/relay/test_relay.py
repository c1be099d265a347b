"""The ring relayed through Redis Streams (contract section 7), against a real redis-server:
remote processors write the same bytes as a local one and as the contract oracle, through
kill -9 of the relay, of a remote processor and of the Redis server; a slow group holds the
engine back; trimming never drops what a group still needs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import ringbuffer
from tests.support import wait_until
from tests.support.oracle import expected_logs
from tests.support.processor import logs, out_args, written_up_to
from tests.support.programs import Proc, run_module
from tools.redisserver import INSTALL_HINT, RedisServer, available

pytestmark = pytest.mark.skipif(not available(), reason=INSTALL_HINT)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", appendonly=True) as s:
        yield s


def remote(server: RedisServer, out: Path, name: str, *extra: str) -> Proc:
    return Proc("processor", [*out_args(out, "unused", name), "--redis", server.url,
                              "--stream", "q", "--exit-at-end", *extra])  # fmt: skip


def relay(server: RedisServer, ring: str, *extra: str) -> Proc:
    return Proc("relay", ["--ring", ring, "--redis", server.url, "--stream", "q", *extra])


def engine(csv: Path, ring: str, state: Path, *extra: str) -> Proc:
    return Proc("engine", ["--mode", "historical", "--historical", str(csv), "--ring", ring,
                           "--state-dir", str(state), "--exit-at-end", *extra])  # fmt: skip


def oracle(csv: Path, tmp_path: Path) -> tuple[bytes, bytes]:
    mid, err = tmp_path / "mid.ref", tmp_path / "err.ref"
    expected_logs(str(csv), 20.0, str(mid), str(err))
    return mid.read_bytes(), err.read_bytes()


def finish(*procs: Proc) -> None:
    for p in procs:
        try:
            code = p.wait()
        except AssertionError:
            others = "\n".join(
                f"--- {q.module}:\n{q.stderr()[-3000:]}" for q in procs if q is not p
            )
            raise AssertionError(f"{p.module} did not exit; the others:\n{others}") from None
        assert code == 0, f"{p.module}:\n{p.stderr()}"


def test_two_remote_and_one_local_processor_write_the_oracles_bytes(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    procs = [
        local := Proc(
            "processor", [*out_args(tmp_path / "local", ring_name, "local"), "--exit-at-end"]
        ),
        r := relay(server, ring_name, "--exit-at-end"),
        a := remote(server, tmp_path / "a", "a"),
        b := remote(server, tmp_path / "b", "b"),
    ]
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "max",
               "--wait-for-consumers", "2")  # fmt: skip
    try:
        finish(e, local, r, a, b)
    finally:
        for p in [*procs, e]:
            p.kill()
    expected = oracle(csv20k, tmp_path)
    for out in ("local", "a", "b"):
        assert logs(tmp_path / out) == expected, out


@pytest.mark.parametrize("victim", ["relay", "processor", "redis"])
def test_kill_9_mid_run_then_restart_gives_the_same_bytes(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer, victim: str
) -> None:
    out = tmp_path / "a"
    procs = {"relay": relay(server, ring_name, "--exit-at-end", "--max-lag", "3000"),
             "processor": remote(server, out, "a")}  # fmt: skip
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "1", "--wait-for-consumers", "1")
    try:
        wait_until(lambda: written_up_to(out, 3000, "a"), "3000 records written remotely")
        if victim == "redis":
            server.kill()
            server.start()  # the append-only file brings every acknowledged write back
        else:
            procs[victim].signal(signal.SIGKILL)
            procs[victim].wait()
            procs[victim] = (relay(server, ring_name, "--exit-at-end", "--max-lag", "3000")
                             if victim == "relay" else remote(server, out, "a"))  # fmt: skip
        finish(e, procs["relay"], procs["processor"])
    finally:
        for p in [*procs.values(), e]:
            p.kill()
    assert logs(out) == oracle(csv20k, tmp_path)


def test_a_slow_group_holds_the_engine_back_and_trimming_keeps_what_it_needs(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    client: Any = redis.Redis.from_url(server.url)
    fast = remote(server, tmp_path / "fast", "fast")
    r = relay(server, ring_name, "--exit-at-end", "--max-lag", "2000")
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "max", "--wait-for-consumers", "1",
               "--capacity", "4096")  # fmt: skip
    slow: Proc | None = None
    try:
        wait_until(lambda: client.exists("q") and client.xinfo_groups("q"), "the fast group")
        client.xgroup_create("q", "slow", id="0")  # a group that reads nothing yet
        r.wait_log(r"holding: the slowest consumer group is behind")
        assert e.p.poll() is None, "the engine waits: the relay does not read the ring"
        records = sum(int(f[b"last_seq"]) - int(f[b"first_seq"]) + 1
                      for _, f in client.xrange("q") if b"first_seq" in f)  # fmt: skip
        assert records <= 2000 + 8192, f"the stream holds {records} records"
        assert client.xrange("q", count=1)[0][1].get(b"first_seq") == b"0", "nothing trimmed"
        slow = remote(server, tmp_path / "slow", "slow")
        finish(e, r, fast, slow)
    finally:
        for p in (fast, r, e, slow):
            if p is not None:
                p.kill()
    expected = oracle(csv20k, tmp_path)
    assert logs(tmp_path / "fast") == expected and logs(tmp_path / "slow") == expected


def test_trimming_waits_until_every_group_acknowledged(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    """A group holding entries delivered but not acknowledged keeps them (and what follows) in
    the stream; once it acknowledges them they are trimmed. SIGTERM stops the relay: exit 0."""
    client: Any = redis.Redis.from_url(server.url)
    client.xgroup_create("q", "holder", id="0", mkstream=True)
    fast = remote(server, tmp_path / "fast", "fast")
    r = relay(server, ring_name, "--max-lag", "1000000")
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "max", "--wait-for-consumers", "1")
    try:
        finish(e, fast)  # the fast group has read and acknowledged everything, the end included
        held = client.xreadgroup("holder", "h", {"q": ">"}, count=2)[0][1]
        held_ids = [entry_id for entry_id, _ in held]
        first_id = client.xrange("q", count=1)[0][0]
        assert held_ids[0] == first_id
        # Delivered is not acknowledged: the relay trims nothing while the holder's first
        # unacknowledged entry is the stream's first; acknowledging the first one frees it.
        client.xack("q", "holder", held_ids[0])
        wait_until(lambda: client.xrange("q", count=1)[0][0] == held_ids[1],
                   "the entry every group acknowledged trimmed, the next one kept")  # fmt: skip
        assert client.xpending("q", "holder")["min"] == held_ids[1]
        r.signal(signal.SIGTERM)
        assert r.wait() == 0, r.stderr()
    finally:
        for p in (fast, r, e):
            p.kill()
    assert logs(tmp_path / "fast") == oracle(csv20k, tmp_path)


def test_a_bad_redis_url_is_exit_2_naming_it(ring_name: str, tmp_path: Path) -> None:
    for module, args in (
        ("relay", ["--ring", ring_name, "--redis", "redis://127.0.0.1:9/0"]),
        ("processor", [*out_args(tmp_path, ring_name), "--redis", "redis://127.0.0.1:9/0"]),
        ("relay", ["--ring", ring_name, "--redis", "http://nope"]),
    ):
        res = run_module(module, *args)
        assert res.returncode == 2, res.stderr
        assert "--redis" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_an_entry_written_by_something_else_is_named(tmp_path: Path, server: RedisServer) -> None:
    client: Any = redis.Redis.from_url(server.url)
    entry = client.xadd("q", {"hello": "world"})
    res = run_module("processor", *out_args(tmp_path, "unused"), "--redis", server.url,
                     "--stream", "q", "--exit-at-end")  # fmt: skip
    assert res.returncode == 1
    assert f"stream entry {entry.decode()} is not a quote-replay entry" in res.stderr


def test_an_entry_appended_twice_is_written_once(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    """An XADD retried after its reply was lost leaves an entry twice in the stream: the
    remote processor drops the second copy by seq (no gap), the logs are the oracle's."""
    client: Any = redis.Redis.from_url(server.url)
    client.xgroup_create("q", "keeper", id="0", mkstream=True)  # nothing is trimmed
    r = relay(server, ring_name, "--exit-at-end", "--max-lag", "1000000")
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "max", "--wait-for-consumers", "1",
               "--capacity", "4096")  # fmt: skip
    try:
        finish(e, r)
    finally:
        for p in (r, e):
            p.kill()
    entries = client.xrange("q")
    assert len(entries) >= 4, "several batches"
    for i, (_, fields) in enumerate(entries):
        client.xadd("q2", fields)
        if i in (1, 2):
            client.xadd("q2", fields)
    res = run_module("processor", *out_args(tmp_path / "a", "unused", "a"), "--redis", server.url,
                     "--stream", "q2", "--exit-at-end")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert logs(tmp_path / "a") == oracle(csv20k, tmp_path)


def test_the_relay_refuses_a_stream_written_by_something_else(
    ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    client: Any = redis.Redis.from_url(server.url)
    entry = client.xadd("q", {"hello": "world"})
    w = ringbuffer.create(ring_name, {"seq": "uint64"}, capacity=1024)
    try:
        res = run_module("relay", "--ring", ring_name, "--redis", server.url, "--stream", "q")
    finally:
        w.close()
    assert res.returncode == 1, res.stderr
    assert f"stream entry {entry.decode()} is not a quote-replay entry" in res.stderr


def test_sigint_and_sigterm_stop_relay_and_remote_processor_with_0(
    ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    """Both wait (the relay for its ring, the processor for the stream); a signal ends them
    cleanly."""
    r = relay(server, ring_name)
    p = remote(server, tmp_path / "a", "a")
    try:
        r.wait_log(r"waiting for the ring")
        p.wait_log(r"waiting for the stream")
        r.signal(signal.SIGINT)
        p.signal(signal.SIGTERM)
        assert r.wait() == 0, r.stderr()
        assert p.wait() == 0, p.stderr()
    finally:
        r.kill()
        p.kill()


def test_a_relay_alone_then_a_processor_after_the_end_gets_everything(
    csv20k: Path, ring_name: str, tmp_path: Path, server: RedisServer
) -> None:
    """No stream and no group while the relay starts and runs (it used to stop at its first
    look at the groups: "no such key"); a processor started after the end reads it all."""
    r = relay(server, ring_name, "--exit-at-end")
    e = engine(csv20k, ring_name, tmp_path / "state", "--speed", "max", "--wait-for-consumers", "1")
    try:
        finish(e, r)
        late = remote(server, tmp_path / "late", "late")
        finish(late)
    finally:
        for p in (r, e):
            p.kill()
    assert logs(tmp_path / "late") == oracle(csv20k, tmp_path)
