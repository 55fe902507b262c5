"""Adult: serving latency and throughput of the exported ONNX graphs against PyTorch eager.

Trains the suggested Adult spec (2 epochs), exports its bundle with INT8 (``export_bundle`` with
the training workspace, so parity and INT8 figures are on the run's validation rows), then times
scoring validation rows at batch 1, 64 and 1024 with 1 and 2 threads -- like Table 2 of the
Wide & Deep paper (serving latency by batch size and threads):

  * torch eager   -- ``WideDeep.forward`` under ``torch.no_grad()`` on encoded tensors
                     (``torch.set_num_threads``);
  * model.onnx    -- onnxruntime on the same encoded inputs (``intra_op_num_threads``);
  * model.int8    -- the INT8 model graph (op types chosen by the export's measurement);
  * engine e2e    -- the engine's Python preprocessing (``Preprocessor._encode_batch`` on the
                     Arrow batch of its SELECT) + torch eager;
  * raw.onnx      -- onnxruntime from raw column values (the SELECT's text/number values) to
                     probabilities: preprocessing inside the graph;
  * raw.int8      -- the same with the INT8 model graph.

Both "e2e" and "raw" rows start from the SQL outputs (canonical text / double per column), so
DuckDB's query time is excluded from both.  Each cell: median milliseconds per call over at least
20 calls and 0.3 s, and rows/s = batch / median.  A note on machine load ends the output.

Run: ``.venv/bin/python bench/onnx_latency.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import onnxruntime as ort
import torch
from _contention import Contention

from studio_core.data.split import make_split
from studio_core.data.workspace import Workspace
from studio_core.export.bundle import export_bundle
from studio_core.export.model_card import figures_text
from studio_core.export.onnx_raw_inputs import raw_feeds, raw_inputs, raw_select_sql
from studio_core.export.scoring import load_bundle
from studio_core.features.preprocess import BATCH_ROWS
from studio_core.features.suggest import suggest
from studio_core.runs import train as pipeline
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]
BATCHES, THREADS = (1, 64, 1024), (1, 2)
MIN_CALLS, MIN_SECONDS, MAX_CALLS = 20, 0.3, 3000


def timed(fn, n_rows: int, batch: int) -> float:
    """Median seconds per call of ``fn(start)`` over consecutive batches of the rows."""
    starts = list(range(0, n_rows - batch + 1, batch)) or [0]
    fn(starts[0])  # warm-up (allocations, first-call paths)
    times, t_end, i = [], time.perf_counter() + MIN_SECONDS, 0
    while (len(times) < MIN_CALLS or time.perf_counter() < t_end) and len(times) < MAX_CALLS:
        s = starts[i % len(starts)]
        t0 = time.perf_counter()
        fn(s)
        times.append(time.perf_counter() - t0)
        i += 1
    return statistics.median(times)


def session(blob: bytes, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    warnings.filterwarnings("ignore")
    contention = Contention()
    load = os.getloadavg()[0]
    threads_before = torch.get_num_threads()
    ws = Workspace()
    table = ws.load(str(ROOT / "sample_data" / "adult.csv")).table
    spec = suggest(ws, DataSpec(table=table, label="income")).spec
    spec.train.epochs = 2
    with tempfile.TemporaryDirectory() as tmp:
        out = pipeline.train(spec, ws, Path(tmp) / "run")
        t0 = time.perf_counter()
        figures = export_bundle(out.run_dir, Path(tmp) / "adult.zip", ws=ws, int8=True)
        export_s = time.perf_counter() - t0
        bundle = load_bundle(Path(tmp) / "adult.zip")
    prep, model = out.preprocessor, out.model.eval()
    print(f"Adult, suggested spec, {out.metrics['epochs_run']} epochs: validation AUC {out.metrics['auc']:.4f}; "
          f"{len(spec.features.crosses)} crosses; hidden units {spec.model.hidden_units}")
    print(f"export_bundle (ONNX export, parity on 10,000 rows, INT8 candidates) took {export_s:.1f} s")
    print(figures_text(figures).replace("bundle written to", "bundle:"))
    print("graph sizes: " + ", ".join(f"{k} {len(v) / 1024:.0f} KiB" for k, v in bundle.graphs.items()))
    print()

    split = make_split(ws, spec.data, "__wd_bench")
    enc = prep.transform(split.val, with_label=False)
    n = len(enc)
    arrays = {"wide": enc.wide, "cat": enc.cat, "num": enc.num}
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    inputs = raw_inputs(prep)
    arrow = split.con.sql(raw_select_sql(prep, split.val.relation)).to_arrow_table().combine_chunks()
    feeds = raw_feeds(arrow.to_batches(max_chunksize=len(arrow))[0], inputs)
    keys = {name: (f"n{i}" if name in prep._numeric_cols() else f"t{i}") for i, name in enumerate(prep.input_columns())}
    sel = split.con.sql(prep.select_sql(split.val.relation, with_label=False)).to_arrow_table().combine_chunks()
    assert len(sel) == n == len(arrow) <= BATCH_ROWS

    results: dict[tuple[str, int, int], float] = {}
    for threads in THREADS:
        torch.set_num_threads(threads)
        sessions = {name: session(bundle.graphs[g], threads) for name, g in
                    (("model.onnx", "model.onnx"), ("model.int8", "model.int8.onnx"), ("raw.onnx", "raw.onnx"), ("raw.int8", "raw.int8.onnx"))
                    if g in bundle.graphs}
        model_names = [i.name for i in sessions["model.onnx"].get_inputs()]
        for b in BATCHES:
            with torch.no_grad():
                results["torch eager", b, threads] = timed(lambda s, b=b: model(*(tensors[k][s : s + b] for k in ("wide", "cat", "num"))), n, b)
                results["engine e2e (py prep + torch)", b, threads] = timed(
                    lambda s, b=b: model(*(torch.from_numpy(a) for a in prep._encode_batch(sel.slice(s, b), keys, False)[:3])), n, b)
            for name in ("model.onnx", "model.int8"):
                if name in sessions:
                    results[name, b, threads] = timed(
                        lambda s, b=b, sess=sessions[name], names=model_names: sess.run(["logit"], {k: arrays[k][s : s + b] for k in names}), n, b)
            for name in ("raw.onnx", "raw.int8"):
                if name in sessions:
                    results[name, b, threads] = timed(
                        lambda s, b=b, sess=sessions[name]: sess.run(["prediction"], {k: v[s : s + b] for k, v in feeds.items()}), n, b)
    torch.set_num_threads(threads_before)

    engines = list(dict.fromkeys(k[0] for k in results))
    print(f"Serving latency on {n} validation rows (median ms per call; rows/s = batch / median); "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}")
    head = "".join(f"{f'{t} thread' + ('s' if t > 1 else ''):>26}" for t in THREADS)
    print(f"{'':32}{'batch':>6}{head}")
    for name in engines:
        for b in BATCHES:
            cells = "".join(f"{results[name, b, t] * 1e3:10.3f} ms {b / results[name, b, t]:10.0f}/s" for t in THREADS)
            print(f"{name:32}{b:6d}{cells}")
    print()
    for b in BATCHES:
        for t in THREADS:
            print(f"batch {b:5d}, {t} thread(s): model.onnx is {results['torch eager', b, t] / results['model.onnx', b, t]:.1f}x torch eager; "
                  + (f"raw.onnx is {results['engine e2e (py prep + torch)', b, t] / results['raw.onnx', b, t]:.1f}x the engine's preprocessing + torch"
                     if ("raw.onnx", b, t) in results else "no raw graph"))
    print(f"load average at start {load:.2f} ({os.cpu_count()} CPUs)")
    print(contention.report())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
