"""The project's own live format (contract section 1, "Live messages"): the default.

A frame is one quote object or an array of them, exactly as ``engine.live_parse.parse_frame``
reads it; nothing is sent on connect and there is no heartbeat beyond websocket pings. This is
what ``python -m engine.feed`` and the venue's ``/ws/quotes`` send.
"""

from __future__ import annotations

from engine.live_parse import parse_rows
from engine.venues._base import Adapter, Decoded


class Ours(Adapter):
    format = "ours"
    venue = ""
    docs = "contract section 1, Live messages"
    needs_instruments = False

    def decode(self, data: str | bytes, frame_no: int, received_ns: int) -> Decoded:
        rows, rejected = parse_rows(data, source=self.source, frame_no=frame_no,
                                    max_bytes=self.max_bytes)  # fmt: skip
        self.counts["quotes"] += len(rows)
        return Decoded(rows, frame_no, received_ns, rejected, [], [])
