"""The ring relayed through Redis Streams (contract section 7).

- ``python -m relay``: a consumer of the ring that appends its batches to a Redis stream, one
  entry a batch (:mod:`relay._relay`, :mod:`relay.cli`);
- :class:`StreamConsumer`: what ``python -m processor --redis URL`` reads instead of the ring;
- the entries' encoding (:func:`encode`, :func:`decode`, :func:`end_marker`), pure.
"""

from relay._entries import FORMAT, Entry, ForeignEntry, decode, encode, end_marker
from relay._remote import StreamConsumer

__all__ = ["FORMAT", "Entry", "ForeignEntry", "StreamConsumer", "decode", "encode", "end_marker"]
