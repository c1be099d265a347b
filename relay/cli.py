"""``python -m relay``: the ring, relayed to a Redis stream (contract section 7).

    python -m relay [--ring quotes] [--redis redis://127.0.0.1:6379/0] [--stream quotes]
                    [--name relay] [--max-lag N] [--exit-at-end]

Exit 0 at a stop (SIGINT/SIGTERM) or, with ``--exit-at-end``, once the engine's end of stream is
appended; 2 for a bad command line or a Redis it cannot use at start; 1 for a runtime failure.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

import ringbuffer
from common.cli import Parser, StopFlag, UsageError, run_program
from common.log import bridge_stdlib, get_logger

PROG = "python -m relay"
DEFAULT_MAX_LAG = 1_000_000
ATTACH_POLL = 0.05  # seconds between looks for the ring while it does not exist
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = Parser(prog=PROG, component="relay", description=__doc__.splitlines()[0])
    p.add_argument("--ring", default="quotes", help="the ring to read (%(default)s)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="(%(default)s)")
    p.add_argument("--stream", default="quotes", help="the Redis stream (%(default)s)")
    p.add_argument("--name", default="relay", help="its consumer name on the ring (%(default)s)")
    p.add_argument("--max-lag", type=int, default=DEFAULT_MAX_LAG, metavar="N",
                   help="stop reading the ring while the slowest group is more than N records "
                        "behind (%(default)s)")  # fmt: skip
    p.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit 0 once the engine's end of stream is appended",
    )
    args = p.parse_args(argv)
    if args.max_lag < 1:
        p.error(f"--max-lag must be at least 1, not {args.max_lag}")
    if not _NAME.fullmatch(args.stream):
        p.error(f"--stream {args.stream!r}: letters, digits and _ . : - only")
    try:
        ringbuffer.check_name(args.ring)
    except ValueError as e:
        p.error(f"--ring: {e}")
    return args


def run(args: argparse.Namespace, stop: StopFlag) -> int:
    from relay._redis import connect
    from relay._relay import Relay

    log = get_logger("relay")
    client = connect(args.redis, "--redis")
    consumer = ringbuffer.ResumingConsumer(
        args.ring, args.name, release="commit", stop=lambda: stop.requested, sleep=stop.sleep,
        attach_poll=ATTACH_POLL,
    )  # fmt: skip
    try:
        if not consumer.attach():
            return 0
        relay = Relay(client, args.stream, consumer, max_lag=args.max_lag,
                      exit_at_end=args.exit_at_end, stop=stop, log=log)  # fmt: skip
        return relay.run()
    finally:
        consumer.close()
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopFlag()
    stop.install()
    args = parse_args(argv)
    bridge_stdlib()
    return run_program("relay", lambda: run(args, stop), (ringbuffer.ConsumerNameInUse,))


__all__ = ["UsageError", "main"]
