"""The replay engine: reads historical CSV or live JSON quotes and publishes them to the ring.

The input side (``historical``, ``live_parse``, ``timestamps``, ``cache``, ``rejects``) is pure
parsing and validation over bytes and records; files, sockets and the ring stay at the edges.
"""
