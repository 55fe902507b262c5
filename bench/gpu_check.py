"""GPU against the same machine's CPU: training rows/s, AUC, GPU memory and where a step's time goes.

Run once on a machine with a CUDA GPU (prints as it goes; the last lines are the summary):
``python bench/gpu_check.py [--rows 4000000 20000000] [--cpu-seconds 40] [--out DIR]``
``--dry-run`` runs every section here on the CPU with small tables, to check the script itself.

1. **Adult**, the default spec (no edits), trained by ``runs.train.train`` end to end on
   ``cuda`` and on ``cpu``: training rows/s (the training loop only), validation and test AUC,
   best epoch, GPU memory peak.  The target: GPU >= 3x the CPU, test AUC equal within 0.002.
2. **Profile**: ``torch.profiler`` over 20 training steps of Adult and of the 4M-row table on
   the GPU (after 10 steps of warm-up): the top kernels by GPU time, kernels per step, and GPU
   busy time per step beside the wall time per step.
3. **Generated Criteo-like tables** (``bench/criteo_scale.py``'s generator and spec: 13
   numeric and 26 categorical columns, six of them hashed into 100,000 buckets, one cross) of
   ``--rows`` rows.  The rows are split and encoded once into block files (out of core, as the
   engine does for tables this size) and the same encoded rows are then trained by
   ``runs.train.fit_model`` -- the engine's own training step -- on the GPU (held in GPU memory:
   the spec's batch of 4,096 and the automatic GPU batch), on the GPU streaming the blocks
   through pinned memory (4M only), and on the CPU for ``--cpu-seconds`` (its rows/s is measured
   on the rows it trained in that time).  Target: GPU >= 10x the CPU on the 20M-row table.

Every figure is measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from studio_core.data.load import load_files  # noqa: E402
from studio_core.data.workspace import Workspace  # noqa: E402
from studio_core.features.prepare import fit_preprocessor, prepare  # noqa: E402
from studio_core.features.suggest import suggest  # noqa: E402
from studio_core.runs import train as train_module  # noqa: E402
from studio_core.runs.train import RankRows, batch_size_for, fit_model, rank_rows, train  # noqa: E402
from studio_core.spec.schema import DataSpec, Spec, TrainSpec  # noqa: E402
from studio_core.training import trainer as trainer_module  # noqa: E402
from studio_core.training.batches import BlockBatches  # noqa: E402
from studio_core.training.callbacks import Callback  # noqa: E402

RESULTS: list[dict] = []


def say(text: str) -> None:
    print(text, flush=True)


class ProfileSteps(Callback):
    """Steps a ``torch.profiler`` schedule after each optimiser step (wait, warm-up, active)."""

    def __init__(self, prof: torch.profiler.profile):
        self.prof = prof

    def after_step(self, fit) -> None:  # noqa: ANN001
        self.prof.step()


def profiled(label: str, fn, device: str, wait: int = 10, active: int = 20):  # noqa: ANN001
    """Run ``fn`` with a profiler stepped by every trainer's steps (``wait`` steps, 2 of
    warm-up, then ``active`` recorded: keep them inside one epoch); print its top kernels."""
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device == "cuda" else [])
    summary: dict = {}

    def ready(prof: torch.profiler.profile) -> None:
        events = prof.key_averages()
        attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
        kernels = [e for e in events if getattr(e, attr, 0) > 0 and (device != "cuda" or e.device_type == torch.autograd.DeviceType.CUDA)
                   and not e.key.startswith("ProfilerStep")]
        kernels.sort(key=lambda e: getattr(e, attr), reverse=True)
        busy_us = sum(getattr(e, attr) for e in kernels)
        steps = [e for e in events if e.key.startswith("ProfilerStep")]
        syncs = sum(e.count for e in events if "Synchronize" in e.key or "DtoH" in e.key)  # the host waiting for the device
        summary.update(kernels_per_step=sum(e.count for e in kernels) / active, busy_ms_per_step=busy_us / active / 1000,
                       wall_ms_per_step=sum(e.cpu_time_total for e in steps) / active / 1000, syncs_per_step=syncs / active,
                       top=[(e.key[:70], round(getattr(e, attr) / active, 1), round(e.count / active, 1)) for e in kernels[:12]])

    prof = torch.profiler.profile(activities=activities, schedule=torch.profiler.schedule(wait=wait, warmup=2, active=active, repeat=1),
                                  on_trace_ready=ready)
    original = trainer_module.default_callbacks
    trainer_module.default_callbacks = lambda *a, **k: original(*a, **k) + [ProfileSteps(prof)]
    try:
        with prof:
            started = time.perf_counter()
            out = fn()
            wall = time.perf_counter() - started
    finally:
        trainer_module.default_callbacks = original
    say(f"\n[profile] {label}: {summary.get('kernels_per_step', 0):.0f} kernels per step; device busy "
        f"{summary.get('busy_ms_per_step', 0):.3f} ms of {summary.get('wall_ms_per_step', 0):.3f} ms wall per step; "
        f"{summary.get('syncs_per_step', 0):.2f} host syncs/reads per step")
    for name, us, count in summary.get("top", []):
        say(f"    {us:9.1f} us/step  x{count:<4} {name}")
    RESULTS.append({"section": "profile", "label": label, **summary})
    return out, wall


def adult(device: str, epochs: int | None = None, record: bool = True, batch: int = 0) -> dict:
    ws = Workspace()
    ws.load(ROOT / "sample_data" / "adult.csv", "adult")
    spec = suggest(ws, DataSpec(table="adult", label="income")).spec
    spec.train.device, spec.train.batch_size = device, batch
    if epochs:
        spec.train.epochs, spec.train.early_stopping_patience = epochs, 0
    m = train(spec, ws).metrics
    row = {"section": "adult", "label": f"{device}, batch {m['batch_size']}", "device": device, "rows_per_s": m["train_rows_per_s"], "train_s": m["train_seconds"],
           "val_auc": round(m["auc"], 4), "test_auc": round(m["test"]["auc"], 4), "best_epoch": m["best_epoch"],
           "epochs_run": m["epochs_run"], "batch": m["batch_size"], "amp": m.get("amp"), "gpu_peak_gib": m.get("device_peak_gib"),
           "resident": m.get("device_resident")}
    if record:
        RESULTS.append(row)
    say(json.dumps(row))
    return row


def encoded(rows: int, tmp: Path, dry: bool):  # noqa: ANN201
    """The generated table, split and encoded once into block files; (spec, prep, parts, n)."""
    from criteo_scale import generate
    from criteo_scale import spec as criteo_spec

    path = tmp / f"criteo_{rows}.parquet"
    say(f"\n[{rows:,} rows] generated in {generate(path, rows):.0f} s")
    ws, _tables, _notes = load_files([f"crit={path}"], large=True)
    spec = Spec.from_dict(criteo_spec(path))
    spec.data.validation_fraction, spec.data.test_fraction = 0.02, 0.01
    spec.train.out_of_core = "always"
    started = time.perf_counter()
    split, _streaming = prepare(spec, ws, 1)
    prep = fit_preprocessor(spec, split)
    fitted = time.perf_counter() - started
    parts = {}
    for part, name in (("train", "train"), ("validation", "val")):
        parts[name] = rank_rows(prep, split.shard(part, 0, 1), 4096, spec.train.seed, tmp / f"blocks-{rows}-{name}")
    say(f"[{rows:,} rows] preprocessing fitted in {fitted:.0f} s, {parts['train'].n:,} training and {parts['val'].n:,} validation "
        f"rows encoded in {time.perf_counter() - started - fitted:.0f} s; wide ids {prep.layout().wide_dim:,}")
    return spec, prep, parts, split


def fresh(rows: RankRows, batch: int, seed: int) -> RankRows:
    """The same encoded rows with a new reader (a reader's shuffling state is used up by a run)."""
    return RankRows(BlockBatches(rows.batches.folder, batch, seed), rows.n, rows.y_min, rows.y_max, rows.sample)


def big(rows: int, spec: Spec, prep, parts: dict, device: str, batch: int, label: str, cpu_seconds: float = 0.0,  # noqa: ANN001
        record: bool = True) -> dict:
    spec = Spec.from_dict(spec.to_dict())
    spec.train.device, spec.train.batch_size = device, batch
    spec.train.max_minutes = cpu_seconds / 60.0 if cpu_seconds else 0.0
    if device == "cuda":
        torch.cuda.empty_cache()
    tr, va = fresh(parts["train"], batch, spec.train.seed), fresh(parts["val"], 65536, spec.train.seed)
    started = time.perf_counter()
    fitted = fit_model(spec, prep, tr, va, device, batch, tr.y_min < tr.y_max)
    r = fitted.result
    rows_trained = int(r.rows_per_s * r.train_seconds)
    row = {"section": f"{rows / 1e6:g}M", "label": label, "device": device, "batch": batch, "rows_per_s": round(r.rows_per_s),
           "rows_trained": rows_trained, "train_s": round(r.train_seconds, 1), "wall_s": round(time.perf_counter() - started, 1),
           "val_auc": round(r.best_metrics.get("auc", float("nan")), 4), "gpu_peak_gib": r.device_peak_gib, "resident": fitted.device_resident,
           "stopped_by_budget": r.stopped_by_budget}
    if record:
        RESULTS.append(row)
    say(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[4_000_000, 20_000_000], help="rows of the generated tables")
    parser.add_argument("--cpu-seconds", type=float, default=40.0, help="CPU training time on each generated table")
    parser.add_argument("--deadline", type=float, default=480.0, help="skip sections that would start after this many seconds")
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for results.json")
    parser.add_argument("--adult-batches", type=int, nargs="*", default=[1024, 2048], help="Adult on the GPU at these batches too")
    parser.add_argument("--dry-run", action="store_true", help="every section on the CPU with small tables (checks the script)")
    args = parser.parse_args()
    started = time.perf_counter()
    gpu = "cpu" if args.dry_run else "cuda"
    if gpu == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run this on a machine with one (or --dry-run)")
    if gpu == "cuda":
        torch.ones(1, device="cuda").sum().item()  # context and handles before any timing
        say(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}, "
            f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads")
    rows = [min(r, 60_000) for r in args.rows] if args.dry_run else args.rows

    try:
        # Adult's first epoch has 17 steps at the GPU's batch of 2,048: steps 3-12 are recorded
        profiled("adult, default spec (1 epoch, not in the summary)", lambda: adult(gpu, epochs=1, record=False), gpu, wait=1, active=10)
        adult(gpu)
        adult("cpu")
        for batch in args.adult_batches:  # the same spec with larger batches: what they cost in AUC, what they gain in speed
            adult(gpu, batch=batch)
    except Exception:  # noqa: BLE001 - a bench reports and goes on to the next section
        traceback.print_exc()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for n in rows:
            if time.perf_counter() - started > args.deadline:
                say(f"\n[{n:,} rows] skipped: past the {args.deadline:.0f} s deadline")
                continue
            try:
                spec, prep, parts, split = encoded(n, Path(tmp), args.dry_run)
                auto = batch_size_for(TrainSpec(), "cuda", parts["train"].n)
                first = n == rows[0]
                if first:
                    profiled(f"{n:,} rows, batch 4096 (not in the summary)",
                             lambda s=spec, p=prep, q=parts, n=n: big(n, s, p, q, gpu, 4096, "profiled", record=False), gpu)
                big(n, spec, prep, parts, gpu, 4096, "GPU, in GPU memory, batch 4096")
                big(n, spec, prep, parts, gpu, auto, f"GPU, in GPU memory, automatic batch {auto}")
                if first:  # the same rows streamed from the block files through pinned memory
                    share, train_module.DEVICE_DATA_SHARE = train_module.DEVICE_DATA_SHARE, 0.0
                    try:
                        big(n, spec, prep, parts, gpu, 4096, "GPU, streamed from disk, batch 4096")
                    finally:
                        train_module.DEVICE_DATA_SHARE = share
                big(n, spec, prep, parts, "cpu", 4096, f"CPU, batch 4096, {args.cpu_seconds:.0f} s", args.cpu_seconds)
                split.drop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    say("\n== summary (GPU/CPU ratio of training rows/s; AUC on validation rows, Adult also on test rows) ==")
    cpu = {r["section"]: r for r in RESULTS if r.get("device") == "cpu" and r["section"] != "profile" and r.get("batch") in (512, 4096)}
    for r in RESULTS:
        if r["section"] == "profile":
            continue
        base = cpu.get(r["section"])
        ratio = f"x{r['rows_per_s'] / base['rows_per_s']:.2f}" if base and r is not base and base["rows_per_s"] else ""
        extra = f"test AUC {r['test_auc']}" if "test_auc" in r else f"{r['rows_trained']:,} rows trained"
        say(f"{r['section']:>6} {r.get('label', r['device']):<44} {r['rows_per_s']:>12,.0f} rows/s {ratio:>7}  val AUC {r['val_auc']}  "
            f"{extra}  peak GPU {r.get('gpu_peak_gib')} GiB")
    say(f"total {time.perf_counter() - started:.0f} s")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "gpu_check.json").write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
