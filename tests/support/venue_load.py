"""A venue under load, as a child process for crash tests: ``python -m tests.support.venue_load
DIR COMMANDS [--batch N] [--file-limit BYTES]``.

Applies :func:`exchange.generate` (seed 7) through a :class:`exchange.Venue` in ``DIR``,
committing every ``--batch`` commands, and writes ``acked <seq>`` on stderr after each commit
returned (what a real venue would then acknowledge). With ``--file-limit`` the process may not
write files beyond that size (RLIMIT_FSIZE), so a journal write fails as on a full disk; it then
writes ``write failed durable=<seq> state_hash=<hash>`` (the state rebuilt from disk) and exits 3.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
from pathlib import Path

from exchange import JournalWriteError, Venue, generate, parse_symbols

SYMBOLS = "BTC-USDT:0.01:0.0001"
SEED = 7


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("commands", type=int)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--file-limit", type=int)
    parser.add_argument("--snapshot-every", type=int, default=100_000)
    args = parser.parse_args()
    venue = Venue.open(args.folder, parse_symbols(SYMBOLS), snapshot_every=args.snapshot_every)
    if args.file_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_limit, args.file_limit))
    for n, (command, time) in enumerate(generate(args.commands, seed=SEED, depth=200), 1):
        venue.submit(command, time)
        if n % args.batch == 0:
            try:
                seq = venue.commit()
            except JournalWriteError:
                print(
                    f"write failed durable={venue.durable_seq} state_hash={venue.state_hash()}",
                    file=sys.stderr,
                    flush=True,
                )
                return 3
            print(f"acked {seq}", file=sys.stderr, flush=True)
    venue.close(snapshot=False)
    print("done", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
