"""The studio app in a real headless Chromium against a real ``streamlit run`` server: three figures.

1. Train latency (Adult sample, suggested features, default epochs): seconds from clicking
   "Start training" to the first chart being visible (first ``.vega-embed`` with its svg/canvas on
   the Train page), and to the "Done on ..." success message. The live view polls once a second
   (``st.fragment(run_every=1.0)``), so both include up to ~1 s of that polling.
2. Data-page rerender with a 1,000,000-row table: a 1M-row, 8-column CSV (ints, floats, text
   categories, a date, a bool, a sparse column; numpy, fixed seed) is uploaded with Playwright's
   ``set_input_files`` and loaded with "Load uploaded files". Then a plain rerun that loads nothing
   (the "R" keyboard shortcut) is timed from the key press until ``stApp``'s
   ``data-test-script-state`` has gone "running" -> "notRunning" and the "Running..." status
   widget is gone. Median (and min/max) of 5.
3. Server memory during a ~200 MB upload + load: RSS of the server process plus its children
   (psutil, else /proc/PID/status VmRSS), sampled every 0.1 s from before the upload until the
   "Loaded ..." message. Prints file size, baseline RSS (median of 1 s idle before the upload),
   peak RSS and peak minus baseline. A fresh server is used so figures 1-2 do not inflate it.

Each figure uses its own browser context (a new Streamlit session); runs go to a temp dir
(``WDSTUDIO_RUNS``). The server log is scanned for tracebacks at the end. Ends with the share of
CPU other processes used (``_contention.py``): above 10 % the timings should not be quoted.

Run: ``.venv/bin/python bench/studio_figures.py``  (debug: ``--rows 20000 --mb 5``)
"""

from __future__ import annotations

import argparse  # noqa: E401
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

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
try:
    import psutil
except ImportError:
    psutil = None


def write_csv(path: Path, rows: int, seed: int = 0, chunk: int = 500_000) -> None:
    rng = np.random.default_rng(seed)
    cities = np.array(["Berlin", "Paris", "Lima", "Osaka", "Accra", "Quito", "Perth", "Oslo"])
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        df = pd.DataFrame({
            "id": np.arange(start, start + n), "age": rng.integers(18, 90, n), "income": rng.lognormal(10, 1, n).round(2),
            "score": rng.normal(size=n).round(4), "city": cities[rng.integers(0, len(cities), n)],
            "day": (np.datetime64("2020-01-01") + rng.integers(0, 1500, n).astype("timedelta64[D]")).astype(str),
            "member": rng.random(n) < 0.3, "note": np.where(rng.random(n) < 0.2, "code_" + rng.integers(0, 5000, n).astype(str), ""),
        })
        df.to_csv(path, mode="a" if start else "w", header=not start, index=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(tmp: Path, name: str):
    port, log = free_port(), tmp / f"{name}.log"
    env = {**os.environ, "WDSTUDIO_RUNS": str(tmp / f"runs-{name}")}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "studio.py"), "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 90
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start:\n" + log.read_text()) from None
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = log.read_text()
        if re.search(r"Traceback|Error", text):
            print(f"[server {name} log has errors]\n" + text[-3000:])


def tree_rss(pid: int) -> int:
    """Bytes resident: the process and all its descendants."""
    if psutil:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.Error:
            return 0
        return sum(p.memory_info().rss for p in procs if p.is_running())
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            total += 1024 * int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text()).group(1))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def no_exception(page, where: str) -> None:
    n = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").count()
    if n:
        print(f"  !! {where}: {n} error element(s) on the page:", page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").first.inner_text()[:500])


def idle(page, timeout: float = 600_000) -> None:
    """Wait until no script run is in progress (clicking earlier races two runs on one DuckDB connection)."""
    page.wait_for_function("document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state') === 'notRunning'",
                           polling=50, timeout=timeout)


def upload_and_load(page, path: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(path))
    button = page.get_by_role("button", name="Load uploaded files")
    button.wait_for(state="visible", timeout=900_000)
    t1 = time.perf_counter()
    button.click()
    expect(page.get_by_text(re.compile(r"^Loaded .* as table"))).to_be_visible(timeout=900_000)
    return t1 - t0, time.perf_counter() - t1


def fig_train(browser, url: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_role("button", name="Load sample").click()
    expect(page.get_by_text(re.compile(r"Loaded\s+`?adult"))).to_be_visible(timeout=120_000)
    idle(page)
    page.get_by_role("link", name="Features").click()
    page.get_by_role("button", name="Suggest features").click()
    expect(page.get_by_text("Task: binary")).to_be_visible(timeout=120_000)
    idle(page)
    page.get_by_role("link", name="Train").click()
    button = page.get_by_role("button", name="Start training")
    button.wait_for(timeout=60_000)
    idle(page)
    epochs = page.get_by_label("Epochs").input_value()
    t0 = time.perf_counter()
    button.click()
    page.wait_for_function("document.querySelector('.vega-embed svg, .vega-embed canvas') !== null", polling="raf", timeout=600_000)
    t1, n_first = time.perf_counter(), page.locator(".vega-embed").count()
    page.locator(".vega-embed").first.wait_for(state="visible")
    done = page.get_by_text(re.compile(r"^Done on"))
    done.wait_for(state="visible", timeout=900_000)
    t2 = time.perf_counter()
    page.wait_for_timeout(3000)  # let the final full rerun settle before counting charts
    print(f"1. Train (Adult, epochs={epochs}): first chart {t1 - t0:.2f} s after 'Start training' ({n_first} chart(s) then), "
          f"'Done on' after {t2 - t0:.2f} s; charts at the end: {page.locator('.vega-embed').count()}")
    print(f"   {done.first.inner_text()}")
    no_exception(page, "train page")
    page.close()


WATCH = """() => { const app = document.querySelector("[data-testid='stApp']"); window.__ran = false; window.__done = false;
  new MutationObserver(() => { const s = app.getAttribute('data-test-script-state');
    if (s === 'running') window.__ran = true; else if (window.__ran && s === 'notRunning') window.__done = true;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""


def fig_rerender(browser, url: str, csv: Path, reps: int = 5) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("No tables yet").wait_for(timeout=60_000)
    up, load = upload_and_load(page, csv)
    page.locator("[data-testid='stStatusWidgetRunningIcon']").wait_for(state="detached", timeout=600_000)
    no_exception(page, "data page after load")
    times = []
    for _ in range(reps):
        page.wait_for_timeout(500)
        page.get_by_role("heading", name="Data").first.click()  # focus outside inputs so "r" reaches the app
        page.evaluate(WATCH)
        t0 = time.perf_counter()
        page.keyboard.press("r")
        page.wait_for_function("window.__done", polling="raf", timeout=600_000)
        page.locator("[data-testid='stStatusWidgetRunningIcon']").wait_for(state="detached", timeout=600_000)
        times.append(time.perf_counter() - t0)
    print(f"2. Data page, {csv.stat().st_size / 1e6:.0f} MB CSV with {ROWS:,} rows: upload {up:.1f} s, load {load:.1f} s; "
          f"rerun until idle: median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={reps})")
    no_exception(page, "data page after reruns")
    page.close()


def fig_memory(browser, url: str, pid: int, csv: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("No tables yet").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    base = statistics.median(tree_rss(pid) for _ in range(10) if not time.sleep(0.1))
    peak, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(pid))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    up, load = upload_and_load(page, csv)
    stop.set()
    th.join()
    after = tree_rss(pid)
    mib = 1 << 20
    print(f"3. Server memory, {csv.stat().st_size / 1e6:.0f} MB CSV ({csv.stat().st_size / mib:.0f} MiB; upload {up:.1f} s, load {load:.1f} s; "
          f"sampled via {'psutil' if psutil else '/proc'}): baseline {base / mib:.0f} MiB, peak {peak[0] / mib:.0f} MiB, "
          f"peak - baseline {(peak[0] - base) / mib:.0f} MiB, after load {after / mib:.0f} MiB")
    no_exception(page, "data page after 200 MB load")
    page.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--only", default="123")
    opts = ap.parse_args()
    ROWS = opts.rows
    cont = Contention()
    with tempfile.TemporaryDirectory(prefix="studio-figs-") as d, sync_playwright() as p:
        tmp = Path(d)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        if "1" in opts.only or "2" in opts.only:
            with server(tmp, "a") as (url, _):
                if "1" in opts.only:
                    fig_train(browser, url)
                if "2" in opts.only:
                    write_csv(tmp / "table_1m.csv", ROWS)
                    fig_rerender(browser, url, tmp / "table_1m.csv")
        if "3" in opts.only:
            probe = tmp / "probe.csv"
            write_csv(probe, 20_000, seed=1)
            rows = int(opts.mb * 1e6 / (probe.stat().st_size / 20_000)) + 1
            write_csv(tmp / "big.csv", rows, seed=2)
            with server(tmp, "b") as (url, proc):
                fig_memory(browser, url, proc.pid, tmp / "big.csv")
        browser.close()
    print(cont.report())
