"""Browser sessions start training at once on one studio server: do they all finish or wait
their turn, does the server keep answering, and how much memory does it take?  With
``--attack`` one more session runs every attack of ``bench/attack.py`` while the others train.

Starts ``streamlit run app/studio.py`` (``WDSTUDIO_MAX_JOBS``, default 2), opens five Chromium contexts
(Debian's ``/usr/bin/chromium`` through playwright), and in each: load the Adult sample, suggest
features, set 2 epochs, start training -- as close together as one driver thread allows.  While
they run, a thread calls ``/_stcore/health`` every 0.25 s and samples the server's RSS from
``/proc``.  Prints per-session outcome and time, whether any session saw the queue message,
health-check latency (median, p95, max, failures) and the server's peak RSS.

Run: ``.venv/bin/python bench/load_sessions.py`` (five trainers, about 1 minute on 2 cores) or
``.venv/bin/python bench/load_sessions.py --attack`` (seven trainers and the attacker: 8 sessions).
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _contention import Contention
from attack import print_rows, run_attacks, start_server, wait_text

ROOT = Path(__file__).resolve().parents[1]
ATTACK = "--attack" in sys.argv
SESSIONS, EPOCHS = (7 if ATTACK else 5), 2
MAX_JOBS = int(os.environ.get("WDSTUDIO_MAX_JOBS", "2"))  # the studio's default cap
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Watcher(threading.Thread):
    """Health-check latency and server RSS, sampled until stopped."""

    def __init__(self, url: str, pid: int):
        super().__init__(daemon=True)
        self.url, self.pid = url, pid
        self.samples: list[tuple[float, float | None]] = []  # (time, latency ms or None for a failure)
        self.peak_rss = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                ok = urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5).read() == b"ok"
                self.samples.append((t0, (time.perf_counter() - t0) * 1000 if ok else None))
            except OSError:
                self.samples.append((t0, None))
            self.peak_rss = max(self.peak_rss, rss_mib(self.pid))
            time.sleep(0.25)


def adult_counts(ages: list[int]) -> dict[int, int]:
    """Rows of the Adult sample per age, counted here with DuckDB: what each tab must be shown."""
    import duckdb

    path = str(ROOT / "sample_data" / "adult.csv").replace("'", "''")
    got = dict(duckdb.sql(f"SELECT age, count(*) FROM read_csv_auto('{path}') GROUP BY age").fetchall())
    return {a: int(got.get(a, 0)) for a in ages}


def two_tabs(page, rounds: int = 5) -> tuple[int, int, list[str]]:
    """Open a second tab on the first session's token (same browser, same link) and, in both
    tabs at once, save a query result as a table: each tab must be told its own row count.
    Returns (checks, wrong, problems)."""
    other = page.context.new_page()
    other.goto(re.sub(r"/[a-z]+\?", "/?", page.url))  # the Data page is "/"; the link carries the session token (?s=...)
    page.get_by_role("link", name="Data").click()
    tabs = [page, other]
    ages = [25 + i for i in range(2 * rounds)]
    want = adult_counts(ages)
    checks = wrong = 0
    problems: list[str] = []
    try:
        for r in range(rounds):
            checks, wrong = _two_tab_round(tabs, ages[2 * r: 2 * r + 2], want, checks, wrong, problems)
    except Exception as exc:  # noqa: BLE001 - a stuck tab is a finding: keep its picture, go on with the bench
        for i, tab in enumerate(tabs):
            tab.screenshot(path=f"{tempfile.gettempdir()}/two-tabs-{i}.png", full_page=True)
        problems.append(f"bench step failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} (pictures: {tempfile.gettempdir()}/two-tabs-*.png)")
    other.close()
    page.get_by_role("link", name="Train").click()  # back to its run: the bench reads the outcome there
    return checks, wrong, problems


def _two_tab_round(tabs, pair: list[int], want: dict[int, int], checks: int, wrong: int, problems: list[str]) -> tuple[int, int]:
    """One round: both tabs get a query and a table name, then both Run clicks go out back to back."""
    for tab, age in zip(tabs, pair):
        wait_text(tab, r"Run query")
        box = tab.get_by_label("Query your tables")
        box.fill(f"SELECT * FROM adult WHERE age = {age}")
        box.press("Control+Enter")
        name = tab.get_by_label("Save the result as table")
        name.fill(f"age_{age}")
        name.press("Enter")
    for tab in tabs:
        wait_text(tab, r"Run query")
    for tab in tabs:  # both scripts start within one driver step of each other
        tab.get_by_role("button", name="Run query").click()
    for tab, age in zip(tabs, pair):
        shown = wait_text(tab, rf"Saved as age_{age} \(([0-9,]+) rows\)|SQL error[^\n]*|Traceback")
        m = re.search(r"\(([0-9,]+) rows\)", shown)
        checks += 1
        if not m or int(m.group(1).replace(",", "")) != want[age]:
            wrong += 1
            problems.append(f"age {age}: wanted {want[age]:,} rows, page said {shown[:120]!r}")
    return checks, wrong


def main() -> None:
    from playwright.sync_api import sync_playwright

    contention = Contention()
    port = free_port()
    attack_rows: list = []
    with tempfile.TemporaryDirectory() as runs, tempfile.TemporaryDirectory() as uploads:
        # every session comes from 127.0.0.1 here: the per-address cap is raised above the 8 sessions
        # (the attacker's session flood still meets it)
        server = start_server(port, runs, uploads, float(os.environ.get("ATTACK_MEMORY_GIB", "12")),
                              {"WDSTUDIO_MAX_JOBS": str(MAX_JOBS), "WDSTUDIO_SESSIONS_PER_CLIENT": "12", "WDSTUDIO_SESSION_MEMORY": "2GB"})
        url = f"http://127.0.0.1:{port}"
        idle_rss = rss_mib(server.pid)
        watcher = Watcher(url, server.pid)
        watcher.start()
        started = time.perf_counter()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
                pages = [browser.new_context(viewport={"width": 1300, "height": 900}).new_page() for _ in range(SESSIONS)]
                for page in pages:  # data + features for everyone first
                    page.goto(url)
                    page.get_by_role("button", name="Load sample").click()
                for page in pages:
                    page.get_by_text(re.compile(r"Loaded\s+adult")).wait_for(timeout=120_000)
                    page.get_by_role("link", name="Features").click()
                    page.get_by_role("button", name="Suggest features").click()
                for page in pages:
                    page.get_by_text("Task: binary").wait_for(timeout=120_000)
                    page.get_by_role("link", name="Train").click()
                    epochs = page.get_by_role("spinbutton", name="Epochs (at most)")
                    epochs.fill(str(EPOCHS))
                    epochs.press("Tab")
                clicked = time.perf_counter()
                for page in pages:  # start training in all five, back to back
                    page.get_by_role("button", name="Start training").click()
                click_spread = time.perf_counter() - clicked
                tab_checks = two_tabs(pages[0])  # the first trainer's session in two tabs, while all train
                if ATTACK:
                    attack_rows = run_attacks(browser, url, server.pid, Path(uploads))
                outcome: dict[int, tuple[str, float]] = {}
                saw_queue = set()
                deadline = time.time() + 900
                while len(outcome) < SESSIONS and time.time() < deadline:
                    for i, page in enumerate(pages):
                        if i in outcome:
                            continue
                        text = page.inner_text("body")
                        if "in the queue" in text:
                            saw_queue.add(i)
                        auc = re.search(r"Test AUC ([0-9.]+)", text)
                        if auc:
                            outcome[i] = (f"done, test AUC {auc.group(1)}", time.perf_counter() - clicked)
                        elif "Training failed" in text or "Training interrupted" in text:
                            outcome[i] = ("failed", time.perf_counter() - clicked)
                    time.sleep(0.5)
                browser.close()
            all_done = time.perf_counter()
            intervals = []
            for marker in Path(runs).glob("*/.jobs/*.json"):
                rec = json.loads(marker.read_text())
                if "running_since" in rec and "finished" in rec:
                    intervals.append((rec["started"], rec["running_since"], rec["finished"], rec["status"]))
        finally:
            watcher.stop.set()
            watcher.join(5)
            server.terminate()
            server.wait(20)
    print(f"{SESSIONS} browser sessions, {SESSIONS} training jobs (Adult, suggested spec, {EPOCHS} epochs), server cap {MAX_JOBS} concurrent jobs")
    print(f"the {SESSIONS} Start clicks took {click_spread:.1f} s from first to last")
    for i in range(SESSIONS):
        status = outcome.get(i, ("did not finish within 15 min", 0.0))[0]
        print(f"  session {i + 1}: {status}{'  (showed its queue position while waiting)' if i in saw_queue else ''}")
    t0 = min((iv[0] for iv in intervals), default=0.0)
    for queued, running, finished, status in sorted(intervals):
        print(f"  job: queued {queued - t0:5.1f} s, running {running - t0:5.1f} s, ended {finished - t0:5.1f} s ({status}); "
              f"waited {running - queued:4.1f} s, trained {finished - running:4.1f} s")
    events = sorted([(r, 1) for _, r, _, _ in intervals] + [(f, -1) for _, _, f, _ in intervals])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    print(f"most jobs running at once: {peak} (cap {MAX_JOBS}); all {len(intervals)} jobs ended within {max((iv[2] for iv in intervals), default=t0) - t0:.1f} s of the first queueing")
    for name, lo, hi in (("whole run (loads, suggests, training)", started, all_done), ("training phase only", clicked, all_done)):
        window = [lat for t, lat in watcher.samples if lo <= t <= hi]
        ok = sorted(x for x in window if x is not None)
        if ok:
            p95 = ok[min(len(ok) - 1, int(0.95 * len(ok)))]
            print(f"health endpoint, {name}: {len(window)} calls, {len(window) - len(ok)} failed (>5 s or error); "
                  f"latency median {statistics.median(ok):.1f} ms, p95 {p95:.1f} ms, max {ok[-1]:.1f} ms")
    print(f"server RSS: {idle_rss:.0f} MiB idle, peak {watcher.peak_rss:.0f} MiB during the run; whole run {time.perf_counter() - started:.0f} s")
    checks, wrong, problems = tab_checks
    print(f"two tabs on session 1's token, saving query results at once while all trained: {checks} results, {wrong} wrong"
          + "".join(f"\n    {p}" for p in problems))
    if ATTACK:
        print(f"\nthe eighth session's attacks, run while the {SESSIONS} others trained:")
        print_rows(attack_rows)
    print(contention.report())


if __name__ == "__main__":
    main()
