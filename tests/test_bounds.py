"""Every action of a shared studio is bounded: result bytes, model size, columns, decompressed
bytes, spill disk, time; files named on the command line are read within a size; a run folder
is replaced only when it is one.  Each test failed before its fix."""

from __future__ import annotations

import json
import os
import resource
import time
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio_core.cli.main import main
from studio_core.common.errors import StudioError
from studio_core.data.fetch import bounded_frame
from studio_core.data.workspace import Bounds, Workspace
from studio_core.features.sizing import check_layout, layout_params, size_problems, spec_params
from studio_core.features.validate import validate
from studio_core.jobs.training import JobRegistry
from studio_core.spec.schema import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, NumericFeature, Spec


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_huge_result_is_fetched_within_its_byte_budget_and_cells_are_cut():
    """50 MB strings x 100 rows was 5 GB in a pandas frame; now text is cut inside DuckDB and the
    frame stops at its byte budget, saying so."""
    ws = Workspace(memory_limit="2GB")
    before = peak_rss_mb()
    frame = ws.run_sql("SELECT repeat('x', 20000000) AS s, range AS i FROM range(100)")
    assert len(frame) == 100 and frame.s.str.len().max() == 1001 and frame.s[0].endswith("…")
    assert "cut" in frame.attrs["note"]
    assert peak_rss_mb() - before < 1500  # DuckDB builds one 20 MB string a row at a time, Python never holds them
    rows = bounded_frame(ws.con, "SELECT range AS i, repeat('y', 500) AS s FROM range(200000)", max_bytes=2**20)
    assert 0 < len(rows) < 200000 and "first" in rows.attrs["note"]
    assert rows.memory_usage(deep=True).sum() < 4 * 2**20
    assert ws.run_sql("SELECT 1 AS a").attrs["note"] == ""


def test_query_out_streams_to_file(tmp_path, capsys):
    out = tmp_path / "q.csv"
    tiny = tmp_path / "t.csv"
    tiny.write_text("a\n1\n")
    assert main(["query", "--data", str(tiny), "--sql", "SELECT range AS i, repeat('z', 3000) AS s FROM range(5000)", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5001 and lines[0] == "i,s" and len(lines[1]) == 3002  # a file gets the whole cells


def _spec(**model) -> Spec:
    spec = Spec(data=DataSpec(table="t", label="y", positive_class="1"),
                features=FeatureSpec([NumericFeature("x")], [CategoricalFeature("c", embedding_dim=8)]))
    for k, v in model.items():
        setattr(spec.model, k, v)
    return spec


def test_a_model_over_the_size_limit_is_refused_by_validation_with_its_size_and_the_limit():
    ok = _spec(hidden_units=[256, 128])
    assert size_problems(ok) == [] and validate(ok) == []
    huge = _spec(hidden_units=[65536, 65536, 65536])  # 8.6 billion parameters
    (problem,) = [p for p in validate(huge) if p.field == "model"]
    assert "8,590" in problem.message and "200,000,000" in problem.message and "WDSTUDIO_MAX_PARAMS" in problem.message
    buckets = _spec()  # 20 hashed columns of 16M buckets x 480 dimensions: 154 billion embedding parameters
    buckets.features.categorical = [CategoricalFeature(f"c{i}", encoding="hash", hash_buckets=2**24, embedding_dim=480) for i in range(20)]
    assert spec_params(buckets) > 154 * 10**9
    assert any(p.field == "model" and f"{spec_params(buckets):,} parameters" in p.message for p in validate(buckets))
    crosses = _spec()
    crosses.features.crosses = [CrossFeature(["c", "x"]) for _ in range(10_000)]
    assert any(p.field == "features.crosses" for p in validate(crosses))


def test_the_fitted_size_is_exact_and_checked_before_allocating(small_spec, tmp_path, monkeypatch):
    from studio_core.data.split import make_split
    from studio_core.features.prepare import fit_preprocessor
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    prep = fit_preprocessor(spec, make_split(ws, spec.data))
    from studio_core.model.network import WideDeep

    model = WideDeep(prep.layout(), spec.model)
    assert layout_params(prep.layout(), spec.model) == sum(p.numel() for p in model.parameters())
    assert spec_params(spec) <= layout_params(prep.layout(), spec.model) <= spec_params(spec, spec.features.max_vocabulary + 1)
    with pytest.raises(StudioError, match="limit of 1,000 parameters"):
        check_layout(prep.layout(), spec.model, limit=1000)
    monkeypatch.setenv("WDSTUDIO_MAX_PARAMS", "1000")
    with pytest.raises(StudioError, match="WDSTUDIO_MAX_PARAMS"):
        pipeline.train(spec, ws, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_too_many_columns_are_refused_with_the_limit(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(60)) + "\n" + ",".join("1" * 60) + "\n")
    ws = Workspace(bounds=Bounds(max_columns=50))
    with pytest.raises(StudioError, match="60 columns, more than the 50"):
        ws.load(wide)
    pq.write_table(pa.table({f"c{i}": [1] for i in range(60)}), tmp_path / "wide.parquet")
    with pytest.raises(StudioError, match="60 columns"):
        ws.load(tmp_path / "wide.parquet")
    assert ws.tables() == []


def test_a_compressed_parquet_bomb_stops_at_the_spill_budget_and_leaves_nothing(tmp_path):
    """500 bytes on disk, 2 GB in DuckDB: the load stops at the session's spill budget, the half
    table is dropped and the spill files are gone."""
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"s": pa.array(["x" * 1_000_000] * 2000).dictionary_encode()}), bomb, compression="zstd")
    assert bomb.stat().st_size < 10_000
    spill = tmp_path / "spill"
    ws = Workspace(memory_limit="100MB", temp_directory=spill, bounds=Bounds(max_temp_bytes=200 * 2**20))
    started = time.time()
    with pytest.raises(StudioError, match="more disk than this session may use"):
        ws.load(bomb)
    assert time.time() - started < 30 and ws.tables() == []
    assert sum(f.stat().st_size for f in spill.rglob("*") if f.is_file()) < 1 * 2**20


def test_a_load_that_runs_too_long_is_stopped(tmp_path):
    big = tmp_path / "big.csv"
    with big.open("w") as fh:
        fh.write("a,b,c\n")
        for i in range(400_000):
            fh.write(f"{i},{i * 7 % 13},text {i}\n")
    ws = Workspace(threads=1, bounds=Bounds(load_timeout_s=0.05))
    with pytest.raises(StudioError, match="longer than 0.05 s"):
        ws.load(big)
    assert ws.tables() == []


def test_utf16_csv_loads(tmp_path):
    f = tmp_path / "u16.csv"
    f.write_text("name,amount\nZoë,1.5\nKraków,2\n", encoding="utf-16")
    ws = Workspace()
    res = ws.load(f)
    assert res.rows == 2 and ws.run_sql("SELECT * FROM u16 ORDER BY amount").name.tolist() == ["Zoë", "Kraków"]


def _slow_spec() -> Spec:
    """A spec whose data.sql is a trillion rows: validation is instant, reading it never ends."""
    return Spec(data=DataSpec(sql="SELECT range % 7 AS x, (range % 2)::INT AS y FROM range(1000000000000)", label="y", positive_class="1"),
                features=FeatureSpec([NumericFeature("x")]))


def test_cancel_interrupts_a_job_stuck_in_duckdb_and_the_data_stage_has_a_time_limit(tmp_path):
    ws = Workspace(threads=1)
    registry = JobRegistry(tmp_path / "runs")
    job = registry.get(registry.submit("me", _slow_spec(), ws), "me")
    deadline = time.time() + 30  # the first job imports the training stack
    while job.snapshot().status != "running" and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # inside DuckDB by now
    assert job.snapshot().status == "running"
    started = time.time()
    job.cancel()
    job.join(20)
    assert job.snapshot().status == "cancelled" and time.time() - started < 10

    timed = JobRegistry(tmp_path / "runs", data_timeout_s=1.0)
    job = timed.get(timed.submit("me", _slow_spec(), ws), "me")
    job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "longer than 1 s" in snap.error and "WDSTUDIO_DATA_TIMEOUT_S" in snap.error


def test_one_session_cannot_queue_more_than_its_share_of_jobs(tmp_path):
    ws = Workspace(threads=1)
    registry = JobRegistry(tmp_path / "runs", jobs_per_owner=1)
    first = registry.get(registry.submit("me", _slow_spec(), ws), "me")
    with pytest.raises(StudioError, match="WDSTUDIO_SESSION_JOBS"):
        registry.submit("me", _slow_spec(), ws)
    other = registry.get(registry.submit("someone else", _slow_spec(), ws), "someone else")  # others are not blocked
    for j in (first, other):
        j.cancel()
        j.join(20)
    registry.get(registry.submit("me", _slow_spec(), ws), "me").cancel()  # a finished job frees its place


def test_train_out_replaces_only_a_run_directory(capsys, tmp_path, synthetic_csv):
    thesis = tmp_path / "work"
    (thesis / "src").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("chapter one")
    (thesis / "metrics.json").write_text("{}")  # looked like a run before: the folder was deleted
    rc = main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "1", "--out", str(thesis)])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().startswith("error:") and "not a run directory" in err and "Traceback" not in err
    assert (thesis / "thesis.tex").read_text() == "chapter one" and (thesis / "src").is_dir()
    run = tmp_path / "run"
    for _ in range(2):  # a run folder is replaced by the next run
        assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "1", "--out", str(run)]) == 0
    assert (run / ".wdstudio-run").is_file()
    assert oct(run.stat().st_mode & 0o777) == "0o700" and oct((run / "model.pt").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("option", ["--spec", "--preprocessing"])
def test_cli_refuses_devices_fifos_and_huge_files(capsys, tmp_path, synthetic_csv, option, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(300 * 2**20)  # sparse: 300 MB that cost nothing
    command = ["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "1", "--out", str(tmp_path / "r")]
    for bad, needle in (("/dev/zero", "not a regular file"), (str(fifo), "not a regular file"), (str(huge), "more than the")):
        started = time.time()
        rc = main([*command, option, bad])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and err.count("\n") == 1 and time.time() - started < 10, (bad, err)


def test_score_refuses_a_zip_bomb_bundle(capsys, tmp_path, synthetic_csv):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bundle.json", json.dumps({"format": "x"}))
        with z.open("preprocess.json", "w", force_zip64=True) as member:
            block = b" " * 2**20
            for _ in range(600):  # 600 MB of spaces, a few hundred KB zipped
                member.write(block)
    assert bomb.stat().st_size < 5 * 2**20
    before = peak_rss_mb()
    rc = main(["score", "--bundle", str(bomb), "--data", str(synthetic_csv), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "would inflate" in err and peak_rss_mb() - before < 200


def test_predict_out_may_not_be_its_own_input(capsys, tmp_path, synthetic_csv):
    original = synthetic_csv.read_bytes()
    rc = main(["predict", "--run", str(tmp_path / "no-run"), "--data", str(synthetic_csv), "--out", str(synthetic_csv)])
    assert rc == 2 and "is the input file" in capsys.readouterr().err and synthetic_csv.read_bytes() == original


def test_export_runs_data_sql_in_the_sandbox(capsys, tmp_path, small_spec):
    """A run whose data.sql reads another file cannot leak its bytes into bundle.json."""
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    secret = tmp_path / "secret.csv"
    secret.write_text("colour,size,x1,x2,target\nred,S,1,1,1\n")
    out = pipeline.train(spec, ws, tmp_path / "run")
    saved = json.loads((out.run_dir / "spec.json").read_text())
    saved["data"]["sql"] = f"SELECT * FROM read_csv('{secret}')"
    (out.run_dir / "spec.json").write_text(json.dumps(saved))
    data = tmp_path / "synthetic.csv"
    rc = main(["export", "--run", str(out.run_dir), "--data", str(data), "--out", str(tmp_path / "b.zip")])
    err = capsys.readouterr().err
    assert rc == 2 and "secret.csv" in err and not (tmp_path / "b.zip").exists()


def test_a_full_disk_while_writing_a_run_is_a_message_and_leaves_nothing_behind(small_spec, tmp_path):
    """torch.save on a full disk raised an opaque C++ error ("unexpected pos 704 vs 598"); the run
    writer now says there is no room and where, and removes its half-written folder.  A file-size
    limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the kernel refuse the write as a full disk would."""
    import signal

    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    spec.train.epochs = 1
    out = tmp_path / "runs" / "r1"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(StudioError, match=r"no room to write the run in .*runs.*free some disk space"):
            pipeline.train(spec, ws, out_dir=out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert not out.exists() and list((tmp_path / "runs").iterdir()) == []
