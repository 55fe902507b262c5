"""The studio in a real headless Chromium against a real ``streamlit run`` server: three figures.

1. Train (Adult sample, suggested features, default epochs): seconds from clicking "Start training" to the first
   chart drawn (first ``.vega-embed`` with an svg/canvas; says whether it is the per-step or an epoch chart), to the
   first epoch chart, and to "Done on". The live view polls every 1 s, so each includes up to ~1 s of that.
2. Data-page rerun with a 1,000,000-row, 8-column CSV (ints, floats, text, dates, bools, a sparse column; numpy,
   fixed seed) uploaded with ``set_input_files`` and loaded with "Load uploaded files": a rerun that loads nothing
   (the "R" shortcut) timed from the key press until ``stApp``'s ``data-test-script-state`` went "running" ->
   "notRunning" and the "Running..." icon is gone. Median, min, max of 5.
3. Server RSS (process + children; psutil, else /proc/PID/status VmRSS) sampled every 0.1 s while a 200 MB CSV is
   uploaded and loaded on a fresh server, until the page is idle. Baseline = median over 1 s idle before the upload.

The script waits for each script run to end before the next click (see ``idle``). Runs go to a temp
``WDSTUDIO_RUNS``; server logs are printed if they hold a traceback. Last line: CPU share used by other processes
(``_contention.py``); above 10 % the timings should not be quoted.
Run: ``.venv/bin/python bench/studio_figures.py``   (quick check: ``--rows 20000 --mb 5``)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from _contention import Contention
from playwright.sync_api import expect, sync_playwright

try:
    import psutil
except ImportError:
    psutil = None

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
RUNNING_ICON = "[data-testid='stStatusWidgetRunningIcon']"
WATCH = """() => { const app = document.querySelector("[data-testid='stApp']"); window.__ran = window.__done = false;
  new MutationObserver(() => { const s = app.getAttribute('data-test-script-state');
    if (s === 'running') window.__ran = true; else if (window.__ran && s === 'notRunning') window.__done = true;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""


def write_csv(path: Path, rows: int, max_bytes: int = 0, chunk: int = 500_000) -> None:
    """``rows`` rows, or (max_bytes) rows until the file has max_bytes, cut at a row boundary."""
    rng, cities = np.random.default_rng(0), np.array(["Berlin", "Paris", "Lima", "Osaka", "Accra", "Quito", "Perth", "Oslo"])
    start = 0
    while start < rows if not max_bytes else not path.exists() or path.stat().st_size < max_bytes:
        n = min(chunk, rows - start) if not max_bytes else chunk
        pd.DataFrame({
            "id": np.arange(start, start + n), "age": rng.integers(18, 90, n), "income": rng.lognormal(10, 1, n).round(2),
            "score": rng.normal(size=n).round(4), "city": cities[rng.integers(0, len(cities), n)],
            "day": (np.datetime64("2020-01-01") + rng.integers(0, 1500, n).astype("timedelta64[D]")).astype(str),
            "member": rng.random(n) < 0.3, "note": np.where(rng.random(n) < 0.2, "code_" + rng.integers(0, 5000, n).astype(str), ""),
        }).to_csv(path, mode="a" if start else "w", header=not start, index=False)
        start += n
    if max_bytes:
        with open(path, "r+b") as f:
            f.seek(max_bytes - 65536)
            f.truncate(max_bytes - 65536 + f.read(65536).rfind(b"\n") + 1)


@contextlib.contextmanager
def server(tmp: Path, name: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log, url = tmp / f"{name}.log", f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/studio.py", "--server.port", str(port), "--server.address",
                                 "127.0.0.1", "--server.headless", "true"], cwd=ROOT, env={**os.environ, "WDSTUDIO_RUNS": str(tmp / f"runs-{name}")},
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    try:
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("streamlit did not start:\n" + log.read_text())
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(15)
        if "Traceback" in log.read_text():
            print(f"  !! server {name} log has a traceback:\n" + log.read_text()[-3000:])


def tree_rss(pid: int) -> int:
    """Resident bytes of the process and all its descendants."""
    if psutil:
        with contextlib.suppress(psutil.Error):
            procs = [psutil.Process(pid)]
            return sum(p.memory_info().rss for p in procs + procs[0].children(recursive=True))
        return 0
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, AttributeError):
            total += 1024 * int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text()).group(1))
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir() for c in (t / "children").read_text().split()]
    return total


def idle(page) -> None:
    """Wait until no script run is in progress (with Streamlit's fast reruns, an action during a run starts
    a second script thread while the first still runs, and both use the session's one DuckDB connection)."""
    page.wait_for_function("document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state') === 'notRunning'",
                           polling=50, timeout=900_000)


def check(page, where: str) -> None:
    errors = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    if errors.count():
        print(f"  !! {where}: {errors.count()} error element(s):", errors.first.inner_text()[:500])


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("No tables yet").wait_for(timeout=60_000)
    return page


def upload_and_load(page, path: Path) -> tuple[float, float, float]:
    """Seconds until "Load uploaded files" shows (upload + rerun), then from its click to "Loaded ...", and to idle."""
    t0 = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(path))
    button = page.get_by_role("button", name="Load uploaded files")
    button.wait_for(timeout=900_000)
    t1 = time.perf_counter()
    button.click()
    expect(page.get_by_text(re.compile(r"^Loaded .* as table"))).to_be_visible(timeout=900_000)
    t2 = time.perf_counter()
    idle(page)
    return t1 - t0, t2 - t1, time.perf_counter() - t1


def fig_train(browser, url: str) -> None:
    page = open_page(browser, url)
    page.get_by_role("button", name="Load sample").click()
    expect(page.get_by_text(re.compile(r"Loaded\s+`?adult"))).to_be_visible(timeout=120_000)
    idle(page)
    page.get_by_role("link", name="Features").click()
    page.get_by_role("button", name="Suggest features").click()
    expect(page.get_by_text("Task: binary")).to_be_visible(timeout=120_000)
    idle(page)
    page.get_by_role("link", name="Train").click()
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    idle(page)
    epochs = page.get_by_role("spinbutton", name="Epochs (at most)").input_value()
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function("document.querySelector('.vega-embed svg, .vega-embed canvas') !== null", polling="raf", timeout=900_000)
    t1, n1, in_cols = time.perf_counter(), page.locator(".vega-embed").count(), page.locator("[data-testid='stColumn'] .vega-embed").count()
    page.locator("[data-testid='stColumn'] .vega-embed").first.wait_for(timeout=900_000)
    t2 = time.perf_counter()
    done = page.get_by_text(re.compile(r"^Done on")).first
    done.wait_for(timeout=900_000)
    t3 = time.perf_counter()
    idle(page)
    page.wait_for_timeout(3000)  # the finished run triggers one more full rerun; count charts after it
    print(f"1. Train, Adult, epochs={epochs}: first chart {t1 - t0:.2f} s after 'Start training' ({n1} chart(s), "
          f"{'an epoch chart' if in_cols else 'the per-step chart'}), first epoch chart {t2 - t0:.2f} s, 'Done on' {t3 - t0:.2f} s; "
          f"charts at the end: {page.locator('.vega-embed').count()}\n   {done.inner_text()}")
    check(page, "train page")


def fig_rerun(browser, url: str, csv: Path, rows: int, reps: int = 5) -> None:
    page = open_page(browser, url)
    up, load, run = upload_and_load(page, csv)
    check(page, "data page after load")
    times = []
    for _ in range(reps):
        page.wait_for_timeout(500)
        page.get_by_role("heading", name="Data").first.click()  # focus outside inputs so "r" reaches the app
        page.evaluate(WATCH)
        t0 = time.perf_counter()
        page.keyboard.press("r")
        page.wait_for_function("window.__done", polling="raf", timeout=900_000)
        page.locator(RUNNING_ICON).wait_for(state="detached", timeout=900_000)
        times.append(time.perf_counter() - t0)
    print(f"2. Data page, {rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB CSV): upload {up:.1f} s, 'Loaded' after {load:.1f} s, "
          f"idle after {run:.1f} s; rerun until idle: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, n={reps})")
    check(page, "data page after reruns")


def fig_memory(browser, url: str, pid: int, csv: Path) -> None:
    page = open_page(browser, url)
    page.wait_for_timeout(1000)
    base = statistics.median(tree_rss(pid) for _ in range(10) if not time.sleep(0.1))
    peak, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    up, load, run = upload_and_load(page, csv)
    stop.set()
    sampler.join()
    mib, size = 1 << 20, csv.stat().st_size
    print(f"3. Server RSS (with children, {'psutil' if psutil else '/proc'}), {size / 1e6:.0f} MB CSV ({size / mib:.0f} MiB): "
          f"baseline {base / mib:.0f} MiB, peak {peak[0] / mib:.0f} MiB, peak - baseline {(peak[0] - base) / mib:.0f} MiB, "
          f"after the load {tree_rss(pid) / mib:.0f} MiB; upload {up:.1f} s, 'Loaded' after {load:.1f} s, idle after {run:.1f} s")
    check(page, "data page after the 200 MB load")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--mb", type=float, default=200)
    opts = ap.parse_args()
    cont = Contention()
    with tempfile.TemporaryDirectory(prefix="studio-figs-") as d, sync_playwright() as p:
        tmp = Path(d)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        with server(tmp, "a") as (url, _):
            fig_train(browser, url)
            write_csv(tmp / "rows.csv", opts.rows)
            fig_rerun(browser, url, tmp / "rows.csv", opts.rows)
        write_csv(tmp / "big.csv", 0, max_bytes=int(opts.mb * 1e6))
        with server(tmp, "b") as (url, proc):
            fig_memory(browser, url, proc.pid, tmp / "big.csv")
        if psutil:  # Chromium and the Playwright driver are not waited-for children yet: count their CPU as ours
            for c in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    t = c.cpu_times()
                    cont.own0 -= t.user + t.system + t.children_user + t.children_system
        print(cont.report())
        browser.close()
