"""``make demo``: replay the bundled sample through the engine and a processor, then a short
live phase from ``engine.feed`` with a switch to historical and back, then the venue: simulated
traders on its Wood port, its top of book replayed live into a processor and recorded
(``engine.record --ring``) into a CSV of the historical layout.

Everything goes to ``demo-out/`` (recreated each run).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

from tools.pipeline import ROOT, count_lines, free_port, replay, start, unique_ring, wait

OUT = ROOT / "demo-out"


def wait_until(what: str, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: timed out waiting for {what}")
        time.sleep(0.05)


def historical_phase() -> None:
    print("== historical replay of data/historical_sample.csv (speed max) ==")
    result = replay(ROOT / "data" / "historical_sample.csv", OUT / "historical")
    rejected = count_lines(result.state_dir / "rejected_rows.csv") - 1
    for path in (result.mid_log, result.error_log):
        print(f"  {path.relative_to(ROOT)}: {count_lines(path)} lines")
    print(
        f"  rejected input rows: {rejected} (see "
        f"{(result.state_dir / 'rejected_rows.csv').relative_to(ROOT)})"
    )
    print(f"  engine + processor, start to finish: {result.seconds:.2f} s")
    # The pictures want tickers: a second replay of the sample in the extended format.
    extended = replay(ROOT / "data" / "historical_sample.csv", OUT / "historical-extended",
                      extended=True)  # fmt: skip
    plot = start("processor.plot", ["--mid-log", str(extended.mid_log), "--error-log",
                                    str(extended.error_log), "--input",
                                    "data/historical_sample.csv", "--out", str(OUT / "plots")],
                 OUT / "plot.stderr")  # fmt: skip
    wait(plot, "processor.plot", 120)
    print(f"  plots: {(OUT / 'plots' / 'plots.html').relative_to(ROOT)} "
          "(+ mid_prices.png, latency.png, records_per_second.png)")  # fmt: skip


def live_phase() -> None:
    print("== live: engine.feed plays data/live_sample.csv over a websocket ==")
    out = OUT / "live"
    out.mkdir(parents=True)
    port, ring, state = free_port(), unique_ring("demo"), out / "state"
    mid = out / "mid_prices.log"
    feed = start("engine.feed", ["--csv", "data/live_sample.csv", "--port", str(port),
                                 "--speed", "2"], out / "feed.stderr")  # fmt: skip
    processor = start("processor", ["--ring", ring, "--format", "extended", "--mid-log", str(mid),
                                    "--error-log", str(out / "errors.log"), "--exit-at-end"],
                      out / "processor.stderr")  # fmt: skip
    engine = start("engine", ["--mode", "live", "--live-url", f"ws://127.0.0.1:{port}",
                              "--ring", ring, "--state-dir", str(state), "--speed", "20",
                              "--wait-for-consumers", "1"], out / "engine.stderr")  # fmt: skip
    try:
        wait_until("live quotes", lambda: count_lines(mid) >= 2000)
        print(f"  live quotes are flowing: {count_lines(mid)} mid prices so far")
        (state / "mode").write_text("historical\n")
        wait_until("the switch", lambda: "switched" in (out / "engine.stderr").read_text())
        print("  wrote 'historical' to the control file: the engine switched")
        before = count_lines(mid)
        wait_until("historical quotes", lambda: count_lines(mid) >= before + 2000)
        engine.send_signal(signal.SIGUSR1)
        wait_until("the switch back", lambda: (out / "engine.stderr").read_text().count(
            "switched") >= 2)  # fmt: skip
        print("  SIGUSR1: back to live; SIGTERM ends the stream cleanly")
        engine.send_signal(signal.SIGTERM)
        wait(engine, "engine", 30)
        wait(processor, "processor", 30)
    finally:
        for p in (engine, processor, feed):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    print(f"  {mid.relative_to(ROOT)}: {count_lines(mid)} lines (extended format: with ticker)")
    switches = [ln for ln in (out / "engine.stderr").read_text().splitlines() if "switched" in ln]
    for line in switches:
        print("   ", line[line.index("switched") :])


def venue_phase() -> None:
    print("== the venue: traders on its Wood port, its top of book replayed live ==")
    out = OUT / "venue"
    out.mkdir(parents=True)
    http, private, public = free_port(), free_port(), free_port()
    ring, state, mid = unique_ring("demo-venue"), out / "state", out / "mid_prices.log"
    venue = start("exchange", ["--http-port", str(http), "--private-port", str(private),
                               "--public-port", str(public), "--data-dir", str(out / "data")],
                  out / "venue.stderr")  # fmt: skip
    wait_until("the venue", lambda: "listening" in (out / "venue.stderr").read_text())
    processor = start("processor", ["--ring", ring, "--format", "extended", "--mid-log", str(mid),
                                    "--error-log", str(out / "errors.log"), "--exit-at-end"],
                      out / "processor.stderr")  # fmt: skip
    recording = out / "recording"
    recorder = start("engine.record", ["--ring", ring, "--name", "record", "--out",
                                       str(recording), "--exit-at-end"],
                     out / "record.stderr")  # fmt: skip
    engine = start("engine", ["--mode", "live", "--live-url", f"ws://127.0.0.1:{http}/ws/quotes",
                              "--ring", ring, "--state-dir", str(state),
                              "--wait-for-consumers", "2"], out / "engine.stderr")  # fmt: skip
    traders = start("exchange.load", ["--url", f"http://127.0.0.1:{http}",
                                      "--private", f"127.0.0.1:{private}", "--protocol", "wood",
                                      "--connections", "4", "--rate", "200", "--duration", "6"],
                    out / "traders.stderr")  # fmt: skip
    try:
        print(
            f"  API docs: http://127.0.0.1:{http}/api/docs   order-book page: "
            f"http://127.0.0.1:{http}/   (while the demo runs)"
        )
        wait(traders, "the simulated traders", 60)
        wait_until("the venue's mid prices", lambda: count_lines(mid) >= 10)
        check = subprocess.run([sys.executable, "-m", "exchange.check", "--url",
                                f"http://127.0.0.1:{http}"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)  # fmt: skip
        print(
            f"  exchange.check: {'all invariants hold' if check.returncode == 0 else check.stdout}"
        )
        engine.send_signal(signal.SIGTERM)
        wait(engine, "engine", 30)
        wait(processor, "processor", 30)
        wait(recorder, "recorder", 30)
    finally:
        for p in (traders, engine, processor, recorder, venue):
            if p.poll() is None:
                p.terminate()
                p.wait(30)
    print(f"  {mid.relative_to(ROOT)}: {count_lines(mid)} mid prices of the venue's book")
    recorded = [ln for ln in (out / "record.stderr").read_text().splitlines()
                if " record recorded " in ln]  # fmt: skip
    if recorded:
        line = recorded[-1]
        print(f"  engine.record (a consumer of the ring) wrote the live quotes in the historical "
              f"layout, replayable with --mode historical:\n    {line[line.index('file='):]}")
    stopped = [ln for ln in (out / "venue.stderr").read_text().splitlines() if " stopped " in ln]
    if stopped:
        print("   venue", stopped[-1][stopped[-1].index("stopped") :])


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    t0 = time.perf_counter()
    historical_phase()
    live_phase()
    venue_phase()
    print(f"demo done in {time.perf_counter() - t0:.1f} s; everything is in {OUT.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
