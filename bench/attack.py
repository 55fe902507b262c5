"""Attacks on a shared studio server, as a hostile or careless user would try them.

Starts ``streamlit run app/studio.py`` under an address-space cap it sets on the server process
(``RLIMIT_AS``, default 12 GiB: ``ATTACK_MEMORY_GIB``), then, from one attacker browser
(Debian's Chromium through playwright) and a raw websocket client, runs each attack and reports,
per attack: what the studio did, the server's health afterwards (the health endpoint's latency,
and whether the process is alive), its RSS after the attack and its peak RSS so far (VmHWM), and
the disk used by all session folders.

Run: ``.venv/bin/python bench/attack.py`` (about 2 minutes on 2 cores).  ``run_attacks`` is also
driven by ``bench/load_sessions.py --attack`` while other sessions train.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, key: str) -> float:
    """A /proc/<pid>/status figure in MiB (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def disk_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20 if folder.exists() else 0.0


def health_ms(url: str) -> float | None:
    t0 = time.perf_counter()
    try:
        ok = urllib.request.urlopen(f"{url}/_stcore/health", timeout=10).read() == b"ok"
    except OSError:
        return None
    return (time.perf_counter() - t0) * 1000 if ok else None


def start_server(port: int, runs: str, uploads: str, memory_gib: float, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """The studio on 127.0.0.1:``port`` with its address space capped at ``memory_gib``."""
    cap = int(memory_gib * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "WDSTUDIO_RUNS": runs, "WDSTUDIO_UPLOADS": uploads, "WDSTUDIO_SESSION_MEMORY": "1GB",
           "WDSTUDIO_SESSION_DISK": str(2 * 2**30), **(extra_env or {})}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "studio.py"), "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT, env=env, preexec_fn=limit,
                              stdout=open(os.environ["ATTACK_SERVER_LOG"], "w") if os.environ.get("ATTACK_SERVER_LOG") else subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        if health_ms(url) is not None:
            return server
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} under a {memory_gib:g} GiB address-space cap")
        time.sleep(0.5)
    raise SystemExit("the server did not start")


@dataclass
class Ctx:
    url: str
    pid: int
    uploads: Path
    browser: object
    page: object  # the attacker's page, with Adult loaded
    work: Path


def body(page) -> str:
    return page.inner_text("body")


def wait_text(page, pattern: str, timeout_s: float = 120) -> str:
    """The first match of ``pattern`` in the page text, waiting for it (and for reruns to end)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = body(page)
        m = re.search(pattern, text, re.S)
        if m and "Running..." not in text:
            return m.group(0)
        time.sleep(0.3)
    shot = Path(tempfile.gettempdir()) / f"attack-{abs(hash(pattern)) % 10**6}.png"
    page.screenshot(path=str(shot), full_page=True)
    return f"(nothing matching {pattern!r} within {timeout_s:g} s; the page: {shot})"


def run_sql(page, sql: str) -> None:
    box = page.get_by_label("Query your tables")
    box.fill(sql)
    box.press("Control+Enter")  # commit the text before the click (a rerun)
    wait_text(page, r"Run query")
    page.get_by_role("button", name="Run query").click()


def go(page, url: str, name: str) -> None:
    page.get_by_role("link", name=name).click()
    page.wait_for_timeout(500)


def attack_big_string(c: Ctx) -> str:
    run_sql(c.page, "SELECT repeat('x', 50000000) AS s FROM range(100)")
    return wait_text(c.page, r"(Text longer than [^.]*|SQL error[^\n]*|the query [^\n]*)")


def attack_slow_view(c: Ctx) -> str:
    run_sql(c.page, "CREATE VIEW slow AS SELECT count(*) AS n FROM range(1000000000000000)")
    saved = wait_text(c.page, r"Saved as slow[^\n]*|SQL error[^\n]*|the query ran longer[^\n]*")
    if not saved.startswith("Saved"):
        return f"the view was not saved: {saved}"
    t0 = time.time()
    c.page.reload()
    got = wait_text(c.page, r"Counting the rows of [^\n]*?stopped")
    return f"{saved[:60]}… / on reload: {got[:60]}… (page back in {time.time() - t0:.0f} s)"


def attack_spill_snoop(c: Ctx) -> str:
    run_sql(c.page, f"SELECT * FROM glob('{c.uploads}/*/*/spill/*')")
    return wait_text(c.page, r"SQL error: [^\n]{0,80}")


def attack_parquet_bomb(c: Ctx) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bomb = c.work / "bomb.parquet"
    pq.write_table(pa.table({"s": pa.array(["x" * 1_000_000] * 16000).dictionary_encode()}), bomb, compression="zstd")
    c.page.locator("input[type=file]").set_input_files(str(bomb))
    c.page.get_by_role("button", name="Load uploaded files").click()
    return f"{bomb.stat().st_size} B file (16 GB of text): " + wait_text(c.page, r"bomb\.parquet: [^\n]{0,110}", 300)


def attack_wide_csv(c: Ctx) -> str:
    wide = c.work / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(50_000)) + "\n" + ",".join(["1"] * 50_000) + "\n")
    c.page.reload()  # a fresh uploader
    wait_text(c.page, r"Upload CSV")
    c.page.locator("input[type=file]").set_input_files(str(wide))
    c.page.get_by_role("button", name="Load uploaded files").click()
    return wait_text(c.page, r"wide\.csv: [^\n]{0,90}")


def attack_markdown_pixel(c: Ctx) -> str:
    hits = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    f = c.work / "pixel.csv"
    f.write_text(f'"![x](http://127.0.0.1:{port}/pixel.png)","[click](http://127.0.0.1:{port}/phish)",y\n1,2,0\n3,4,1\n')
    c.page.locator("input[type=file]").set_input_files(str(f))
    c.page.get_by_role("button", name="Load uploaded files").click()
    wait_text(c.page, r"Loaded pixel\.csv")
    c.page.get_by_text("Column profile").click()
    c.page.wait_for_timeout(3000)
    links = c.page.locator("a[href*='phish']").count() + c.page.locator("img[src*='pixel']").count()
    server.shutdown()
    return f"pixel requests: {len(hits)}; links/images in the page: {links}"


def hidden_units(page):
    """The Hidden units box, opening the Advanced section first when it is closed."""
    box = page.get_by_label("Hidden units")
    if not box.is_visible():
        page.get_by_text("Advanced").click()
    return box


def attack_huge_model(c: Ctx) -> str:
    go(c.page, c.url, "Features")
    c.page.get_by_role("button", name="Suggest features").click()
    wait_text(c.page, r"Task: binary")
    go(c.page, c.url, "Train")
    hidden = hidden_units(c.page)
    hidden.fill("65536, 65536, 65536")
    hidden.press("Tab")
    c.page.get_by_role("button", name="Start training").click()
    return wait_text(c.page, r"the model would have at least [0-9,]+ parameters")


def attack_job_flood(c: Ctx) -> str:
    hidden = hidden_units(c.page)
    hidden.fill("64, 32")
    epochs = c.page.get_by_role("spinbutton", name="Epochs (at most)")
    epochs.fill("20")  # long enough that three are still queued or running when the fourth is pressed
    epochs.press("Tab")
    for _ in range(4):
        c.page.get_by_role("button", name="Start training").click()
        c.page.wait_for_timeout(700)
    return wait_text(c.page, r"you already have \d+ trainings queued or running[^\n]{0,40}")


def attack_clear_cache(c: Ctx) -> str:
    """Streamlit's own protocol: one BackMsg with clear_cache, no token."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg

    async def send() -> str:
        msg = BackMsg()
        msg.clear_cache = True
        uri = c.url.replace("http", "ws") + "/_stcore/stream"
        async with websockets.connect(uri, subprotocols=["streamlit"], origin=c.url, max_size=None) as ws:
            await ws.send(msg.SerializeToString())
            await asyncio.sleep(1.0)
        return "sent"

    result: list[str] = []  # playwright's sync API runs an event loop on this thread: send from another
    sender = threading.Thread(target=lambda: result.append(asyncio.run(send())))
    sender.start()
    sender.join(30)
    sent = result[0] if result else "not sent"
    go(c.page, c.url, "Data")
    c.page.reload()
    kept = wait_text(c.page, r"Tables\s.*?Table\s.*?First 50 rows", 60)  # shown only when the session has tables
    return f"clear_cache {sent}; after a refresh the attacker's tables are {'still there' if kept.startswith('Tables') else 'GONE: ' + kept}"


def attack_token_fixation(c: Ctx) -> str:
    mine = re.search(r"[?&]s=([0-9a-f]{32})", c.page.url)
    victim = c.browser.new_context().new_page()
    victim.goto(f"{c.url}/?s={mine.group(1) if mine else ''}")
    victim.wait_for_timeout(3000)
    theirs = re.search(r"[?&]s=([0-9a-f]{32})", victim.url)
    chosen = c.browser.new_context().new_page()
    chosen.goto(f"{c.url}/?s={'ab' * 16}")
    chosen.wait_for_timeout(3000)
    picked = re.search(r"[?&]s=([0-9a-f]{32})", chosen.url)
    out = (f"attacker's link in another browser: {'same session (FIXED)' if theirs and mine and theirs.group(1) == mine.group(1) else 'own session'}; "
           f"client-chosen token: {'taken (FIXED)' if picked and picked.group(1) == 'ab' * 16 else 'replaced'}")
    victim.context.close()
    chosen.context.close()
    return out


def attack_session_flood(c: Ctx) -> str:
    opened, refused = [], 0
    for _ in range(12):
        page = c.browser.new_context().new_page()
        page.goto(c.url)
        page.wait_for_timeout(1500)
        if "No new session" in body(page):
            refused += 1
        opened.append(page)
    for page in opened:
        page.context.close()
    return f"12 more sessions from one address: {12 - refused} opened, {refused} refused (WDSTUDIO_SESSIONS_PER_CLIENT)"


ATTACKS: list[tuple[str, Callable[[Ctx], str]]] = [
    ("SQL box: 100 x 50 MB strings", attack_big_string),
    ("saved view of 1e15 rows, then reload", attack_slow_view),
    ("glob() other sessions' spill files", attack_spill_snoop),
    ("Parquet bomb upload", attack_parquet_bomb),
    ("CSV with 50,000 columns", attack_wide_csv),
    ("Markdown image/link in a header", attack_markdown_pixel),
    ("hidden units 65536 x 3", attack_huge_model),
    ("start training 4 times", attack_job_flood),
    ("websocket clear_cache", attack_clear_cache),
    ("session fixation by link / chosen token", attack_token_fixation),
    ("open 12 more sessions", attack_session_flood),
]


def run_attacks(browser, url: str, pid: int, uploads: Path, log: Callable[[str], None] = print) -> list[tuple[str, str, str, float, float, float]]:
    """Every attack from one attacker session; rows of (attack, outcome, health, RSS, peak RSS, disk MiB)."""
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    page.goto(url)
    page.get_by_role("button", name="Load sample").click()
    wait_text(page, r"Loaded\s+adult")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        c = Ctx(url, pid, uploads, browser, page, Path(work))
        only = os.environ.get("ATTACK_ONLY", "")
        for name, attack in [a for a in ATTACKS if not only or any(o.strip() in a[0] for o in only.split(","))]:
            t0 = time.time()
            try:
                outcome = attack(c)
            except Exception as exc:  # noqa: BLE001 - a failed step is a finding, not a crash of the bench
                outcome = f"bench step failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            lat = [health_ms(url) for _ in range(3)]
            ok = [x for x in lat if x is not None]
            health = f"ok, {sorted(ok)[len(ok) // 2]:.0f} ms" if ok else "DOWN"
            rows.append((name, outcome, health, proc_status(pid, "VmRSS"), proc_status(pid, "VmHWM"), disk_mib(uploads)))
            log(f"  [{time.time() - t0:5.1f} s] {name}: {outcome} | {health}")
            try:  # back to where the next attack starts; a step that fails here is reported, not fatal
                if name in ("start training 4 times",):
                    go(page, url, "Data")
                if name == "Markdown image/link in a header":
                    page.get_by_text("Column profile").click()  # off again
            except Exception as exc:  # noqa: BLE001
                log(f"  (could not reset the page after {name}: {type(exc).__name__})")
    page.context.close()
    return rows


def print_rows(rows: list[tuple[str, str, str, float, float, float]]) -> None:
    print("| attack | outcome | health after | RSS MiB | peak RSS MiB | session disk MiB |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name, outcome, health, rss, peak, disk in rows:
        print(f"| {name} | {outcome} | {health} | {rss:.0f} | {peak:.0f} | {disk:.1f} |")


def main() -> None:
    from playwright.sync_api import sync_playwright

    memory = float(os.environ.get("ATTACK_MEMORY_GIB", "12"))
    port = free_port()
    with tempfile.TemporaryDirectory() as runs, tempfile.TemporaryDirectory() as uploads:
        server = start_server(port, runs, uploads, memory, {"WDSTUDIO_QUERY_TIMEOUT_S": "10"})
        url = f"http://127.0.0.1:{port}"
        idle = proc_status(server.pid, "VmRSS")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
                rows = run_attacks(browser, url, server.pid, Path(uploads))
                browser.close()
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(20)
    print(f"\nserver under RLIMIT_AS {memory:g} GiB, session memory 1GB, session disk 2 GiB; idle RSS {idle:.0f} MiB; "
          f"alive after all attacks: {alive}\n")
    print_rows(rows)


if __name__ == "__main__":
    main()
