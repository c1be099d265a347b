"""The live source: a websocket client in a background thread, batching quotes for the engine.

``LiveSource`` connects to a quote feed (contract section 1, "Live messages"), parses every frame
with ``engine.live_parse.parse_frame`` and hands the engine batches of records (``TABLE_SCHEMA``)
together with the rejects of the same frames, through a bounded queue that the engine drains
with ``poll``. Each rule lives in one private module:

- ``_batcher``: :class:`Batcher`, the rules without I/O: batching (``batch_records`` records
  and rejects, ``batch_interval`` after the first, the end of a connection, ``stop``), the
  bounded queue of pending batches (``max_pending``: a full queue stops the reader, nothing is
  dropped) and idle detection (``idle_timeout``, time blocked on a full queue not counting);
- ``_backoff``: :class:`Backoff`, the reconnect rule without I/O: exponential delays with full
  jitter (:func:`backoff_delay`) up to ``backoff_max``, starting over only after a connection
  stayed up for twice ``backoff_max`` (10 s by default; what it delivered does not count);
- ``_connection``: the asyncio client: connect, reconnect after the :class:`Backoff`'s delays,
  keepalive pings, oversized frames;
- ``_settings``: :class:`LiveSettings`, every setting checked once;
- ``_bridge``: :class:`LiveSource` itself, the thread with its own event loop
  (``common.cli.loop_factory``) and the waiting on both sides of the queue.
"""

from engine.live._backoff import Backoff, backoff_delay
from engine.live._batcher import Batch, Batcher
from engine.live._bridge import LiveSource
from engine.live._settings import LiveSettings

__all__ = ["Backoff", "Batch", "Batcher", "LiveSettings", "LiveSource", "backoff_delay"]
