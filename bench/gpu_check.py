"""CUDA + mixed precision check: Adult and a generated Criteo-like table, GPU versus CPU.

Run on a machine with a GPU (it exits with a message where there is none):
``python bench/gpu_check.py [--rows 4000000] [--epochs 3]``

For each dataset it trains the same spec twice with ``pipeline.train`` in this process --
``train.device = "cuda"`` (autocast bf16, or fp16 with a gradient scaler where bf16 is not
supported) and ``train.device = "cpu"`` -- and prints the training rows/s (training loop only),
the ratio GPU/CPU, validation AUC of both, the autocast dtype used and peak GPU memory.
Adult trains in memory (batch 1024); the generated table (``bench/criteo_scale.py``'s
generator and spec, batch 4096, one epoch) streams out of core.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from studio_core.data.load import load_files  # noqa: E402
from studio_core.data.workspace import Workspace  # noqa: E402
from studio_core.features.suggest import suggest  # noqa: E402
from studio_core.runs.train import train  # noqa: E402
from studio_core.spec.schema import DataSpec, Spec  # noqa: E402


def run(spec: Spec, ws: Workspace, device: str) -> dict:
    spec.train.device = device
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    m = train(spec, ws).metrics
    return {"device": device, "rows_per_s": m["train_rows_per_s"], "train_s": m["train_seconds"], "auc": m["auc"],
            "wall_s": round(time.perf_counter() - started, 1), "amp": m.get("amp"), "out_of_core": m["out_of_core"],
            "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}


def compare(name: str, spec: Spec, ws: Workspace) -> None:
    gpu, cpu = run(spec, ws, "cuda"), run(spec, ws, "cpu")
    for r in (gpu, cpu):
        print(json.dumps({"data": name, **r}), flush=True)
    print(f"{name}: GPU {gpu['rows_per_s']:,.0f} rows/s (autocast {gpu['amp']}), CPU {cpu['rows_per_s']:,.0f} rows/s "
          f"({torch.get_num_threads()} threads) -> x{gpu['rows_per_s'] / cpu['rows_per_s']:.2f}; "
          f"AUC GPU {gpu['auc']:.4f} vs CPU {cpu['auc']:.4f}; peak GPU memory {gpu['gpu_peak_gib']} GiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of the generated table")
    parser.add_argument("--epochs", type=int, default=3, help="Adult epochs")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run this on a machine with one")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}", flush=True)

    ws = Workspace()
    ws.load(ROOT / "sample_data" / "adult.csv", "adult")
    spec = suggest(ws, DataSpec(table="adult", label="income")).spec
    spec.train.epochs, spec.train.batch_size, spec.train.early_stopping_patience = args.epochs, 1024, 0
    compare("adult", spec, ws)

    from criteo_scale import generate  # bench/criteo_scale.py: the same table and spec as the CPU scale bench
    from criteo_scale import spec as criteo_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "criteo_like.parquet")
        print(f"generated {args.rows:,} rows in {generate(path, args.rows):.0f} s", flush=True)
        ws, _tables, _notes = load_files([f"crit={path}"], large=True)
        compare("criteo_like", Spec.from_dict(criteo_spec(path)), ws)


if __name__ == "__main__":
    main()
