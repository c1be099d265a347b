"""`make demo`: what the pipeline can do so far (replaced by the full replay as it lands)."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

import ringbuffer


def main() -> None:
    for name in ("historical", "live"):
        df = pl.read_csv(f"data/{name}_sample.csv", infer_schema_length=0)
        print(f"data/{name}_sample.csv: {df.height} rows, {df['ticker'].n_unique()} tickers")
    w = ringbuffer.create("demo-quotes", {"seq": "uint64", "bid": "float64"}, capacity=1 << 16)
    r = ringbuffer.attach("demo-quotes", consumer="demo", timeout=1.0)

    def produce() -> None:  # the writer blocks while the reader is a whole ring behind
        w.publish({"seq": np.arange(100_000, dtype=np.uint64), "bid": np.ones(100_000)})
        w.end()

    producer = threading.Thread(target=produce)
    producer.start()
    got = 0
    while (batch := r.read(timeout=1.0)) is not None:
        got += batch.num_rows
    producer.join()
    print(f"ring: published 100000 records, the reader got {got}, ended={r.ended}")
    r.close()
    w.close()


if __name__ == "__main__":
    main()
