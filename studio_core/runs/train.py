"""Spec + workspace -> trained run: validate, split, fit preprocessing, train, evaluate, save.

Rows are encoded into tensors in memory, or -- out of core, for tables larger than
``train.out_of_core_rows`` -- streamed once from DuckDB into encoded block files that each
epoch reads back a few blocks at a time.  Under torchrun every process trains a
DistributedDataParallel replica on a disjoint shard; the preprocessing is fitted once.

This is the one place that knows Wide & Deep *and* the trainer: it turns a spec into tensors,
a model, optimisers (a per-coordinate, sparse-gradient optimiser for the wide part with an L1
proximal step; Adam-family for the deep part) and a ``Trainer``, then writes the run directory.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio_core.common.errors import Cancelled, StudioError, TrainingDiverged
from studio_core.common.metrics import auto_monitor, binary_metrics, regression_metrics
from studio_core.common.multiclass import multiclass_metrics
from studio_core.data.source import Source
from studio_core.data.split import Split
from studio_core.data.workspace import Workspace
from studio_core.features.prepare import check_processes, fit_preprocessor, prepare
from studio_core.features.preprocess import Encoded, Preprocessor
from studio_core.features.sizing import check_layout
from studio_core.model.network import WideDeep
from studio_core.runs.evaluation import Scored, score_rows
from studio_core.runs.store import write_run
from studio_core.spec.schema import CPU_BATCH_SIZE, Spec, TrainSpec
from studio_core.training import distributed
from studio_core.training.batches import BLOCK_ROWS, BlockBatches, BlockWriter, TensorBatches, on_device, to_tensors
from studio_core.training.callbacks import L1Proximal
from studio_core.training.distributed import Ranks
from studio_core.training.losses import distributed_loss, task_loss
from studio_core.training.progress import Progress
from studio_core.training.trainer import Trainer, TrainerConfig, TrainResult


@dataclass
class Outcome:
    run_dir: Path | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    model: WideDeep
    preprocessor: Preprocessor
    test: Scored | None = None  # the test rows, scored once after training (the main process only)


def resolve_device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise StudioError("train.device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


GPU_BATCH_MAX = 8192  # the automatic batch on a GPU grows with the training rows up to this
DEVICE_DATA_SHARE = 0.5  # encoded rows are held on a GPU when they take at most this share of its free memory


def batch_size_for(t: TrainSpec, device: str, n_train: int) -> int:
    """``train.batch_size`` when the spec gives one; automatic (0): 512 rows on a CPU, and on
    a GPU the power of two nearest a 16th of the training rows, between 512 and 8,192.  A GPU
    step costs about the same whatever its batch (the host launching kernels is the limit:
    Adult on an H200 ran 82k rows/s at 512 and 363k at 2,048, test AUC 0.9302 and 0.9300,
    the CPU 0.9304 at 512), so a GPU takes the largest batch that still leaves a table about
    16 steps per epoch."""
    if t.batch_size:
        return int(t.batch_size)
    if not device.startswith("cuda"):
        return CPU_BATCH_SIZE
    return int(min(GPU_BATCH_MAX, max(CPU_BATCH_SIZE, 2 ** round(math.log2(max(n_train, 1) / 16)))))


def device_budget(device: str) -> int:
    """Bytes of encoded rows the device may hold (none on the CPU: rows stay in host memory)."""
    if not device.startswith("cuda"):
        return 0
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free * DEVICE_DATA_SHARE)


def tensors(enc: Encoded) -> tuple[torch.Tensor, ...]:
    """Model inputs (+ target) as tensors sharing memory with the NumPy arrays."""
    return tuple(to_tensors((enc.wide, enc.cat, enc.num, enc.y)))


def build_optimizers(model: WideDeep, t: TrainSpec, wide_l1: float) -> tuple[list[torch.optim.Optimizer], Callable[[], None] | None]:
    deep_groups = [g for g in model.deep_parameter_groups(t.weight_decay) if g["params"]]
    deep_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}[t.deep_optimizer]
    fused = {"fused": True} if t.deep_optimizer in ("adam", "adamw") else {}  # one kernel for all params: ~10% faster steps on CPU
    optimizers: list[torch.optim.Optimizer] = [deep_cls(deep_groups, lr=t.deep_lr, **fused)]
    after_step = None
    wide = model.wide_parameters()
    if wide:
        wide_cls = {"adagrad": torch.optim.Adagrad, "sparse_adam": torch.optim.SparseAdam, "sgd": torch.optim.SGD}[t.wide_optimizer]
        l2 = float(getattr(model, "wide_l2", 0.0))
        sparse = bool(getattr(model.wide, "sparse", False))
        decay = {"weight_decay": l2} if l2 > 0 and not sparse and t.wide_optimizer != "sparse_adam" else {}
        wide_opt = wide_cls(wide, lr=t.wide_lr, **decay)
        optimizers.append(wide_opt)
        if wide_l1 > 0:
            after_step = L1Proximal(wide[0], wide_opt, wide_l1).after_step
        elif l2 > 0 and not decay:  # sparse gradients take no weight decay: shrink the table after each step instead
            weight, factor = wide[0], 1.0 - min(t.wide_lr * l2, 0.5)
            after_step = lambda: weight.data.mul_(factor)  # noqa: E731

    return optimizers, after_step


def make_evaluator(prep: Preprocessor) -> Callable[[torch.Tensor, torch.Tensor], dict[str, float]]:
    if prep.task == "binary":
        def evaluate(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
            m = binary_metrics(out.numpy(), y.numpy())
            m["loss"] = m["logloss"]
            return m
    elif prep.task == "multiclass":
        def evaluate(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
            m = multiclass_metrics(out.numpy(), y.numpy())
            m["loss"] = m["logloss"]
            return m
    else:
        def evaluate(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
            m = regression_metrics(prep.decode_label(out.numpy()), prep.decode_label(y.numpy()))
            m["loss"] = float(torch.mean((out - y) ** 2))
            return m
    return evaluate


def extreme_columns(prep: Preprocessor, enc: Encoded, limit: float = 20.0) -> list[str]:
    """Numeric inputs (and a regression label) whose scaled values reach ``limit`` standard
    deviations -- the usual cause of a diverging loss -- largest first, named for the user."""
    names = prep.layout().numeric_inputs
    found = []
    if enc.num.size:
        peaks = np.nanmax(np.abs(enc.num), axis=0)
        found = [(float(v), f"{n} (a value {v:.3g} standard deviations from its mean)") for n, v in zip(names, peaks) if v >= limit]
    if prep.task == "regression" and enc.y is not None and len(enc.y):
        peak = float(np.nanmax(np.abs(enc.y)))
        if peak >= limit:
            found.append((peak, f"the label {prep.label} (a value {peak:.3g} standard deviations from its mean)"))
    return [text for _, text in sorted(found, reverse=True)[:3]]


SAMPLE_ROWS = 4096  # encoded rows kept from a streamed part, to name suspect columns if training diverges


@dataclass
class RankRows:
    """One split part as this process holds it: its batches, how many labelled rows, the
    label's range, and the first encoded rows (to name suspect columns if training diverges)."""

    batches: TensorBatches | BlockBatches
    n: int
    y_min: float
    y_max: float
    sample: Encoded


def rank_rows(prep: Preprocessor, source: Source, batch_size: int, seed: int, folder: Path | None = None,
              stop_event: threading.Event | None = None) -> RankRows:
    """Encode ``source`` into tensors in memory, or, with ``folder``, into block files there
    (one pass over the rows, one record batch in memory at a time; ``stop_event`` cancels
    between batches)."""
    if folder is None:
        enc = prep.transform(source)
        lo, hi = (float(enc.y.min()), float(enc.y.max())) if len(enc) else (math.inf, -math.inf)
        return RankRows(TensorBatches(tensors(enc), batch_size, seed), len(enc), lo, hi, enc)
    writer = BlockWriter(folder, BLOCK_ROWS)
    sample, lo, hi = None, math.inf, -math.inf
    for enc in prep.transform_batches(source, batch_rows=BLOCK_ROWS):  # small record batches: little memory in flight
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        if len(enc):
            sample = sample or Encoded(*(a[:SAMPLE_ROWS].copy() if a is not None else None for a in (enc.wide, enc.cat, enc.num, enc.y)))
            lo, hi = min(lo, float(enc.y.min())), max(hi, float(enc.y.max()))
        writer.add(enc)
    empty = prep.transform(Source(source.con, f"(SELECT * FROM {source.relation} LIMIT 0)"))
    meta = writer.close(empty)
    return RankRows(BlockBatches(folder, batch_size, seed), int(meta["n_rows"]), lo, hi, sample or empty)


def fit_once(spec: Spec, split: Split, ranks: Ranks) -> Preprocessor:
    """Fit on rank 0 only; the other ranks receive its JSON state."""
    if ranks.world <= 1:
        return fit_preprocessor(spec, split)
    text = fit_preprocessor(spec, split).to_json() if ranks.is_main else None
    return Preprocessor.from_json(distributed.broadcast_text(text))


def unknown_classes(prep: Preprocessor, split: Any) -> list[str]:
    """Multiclass: validation or test rows whose class no training row has (they cannot be
    predicted, so they are left out of those figures), said per part with the values."""
    out = []
    for part, source in (("validation", split.val), ("test", split.test)):
        rows = source.all(f"SELECT {prep._text(prep.label)} AS v, count(*) FROM {{src}} WHERE {prep.unknown_class_filter()} GROUP BY 1 ORDER BY 2 DESC LIMIT 6")
        if rows:
            shown = ", ".join(f"{v!r} ({n:,} rows)" for v, n in rows[:5]) + (", ..." if len(rows) > 5 else "")
            out.append(f"{part} rows of class(es) no training row has were left out of the {part} figures: {shown}; "
                       "the model cannot predict a class it never saw (add rows of it, or group it with another class)")
    return out


def agree(train_rows: RankRows, val_rows: RankRows, ranks: Ranks) -> tuple[int, int, float, float]:
    """Totals every rank must decide alike on -- labelled training and validation rows, the
    label's range -- and, with several ranks, the same number of steps per epoch for all."""
    n_train, n_val, y_lo, y_hi = train_rows.n, val_rows.n, val_rows.y_min, val_rows.y_max
    if ranks.world > 1:
        n_train, n_val = (int(v) for v in distributed.all_reduce([n_train, n_val]))
        y_lo, y_hi = distributed.all_reduce([y_lo], "min")[0], distributed.all_reduce([y_hi], "max")[0]
        train_rows.batches.steps_ = int(distributed.all_reduce([train_rows.batches.steps()], "max")[0])
    return n_train, n_val, y_lo, y_hi


def replicate(model: WideDeep, loss_fn: Callable[..., torch.Tensor], evaluate: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
              device: str, ranks: Ranks) -> tuple[torch.nn.Module, Callable[..., torch.Tensor], Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
                                                   Callable[[float], float] | None]:
    """With several ranks: the model wrapped in DistributedDataParallel, the loss scaled to the
    global batch, validation metrics computed on every rank's outputs gathered, and the mean
    of a figure over the ranks (so all ranks judge the loss and the outputs alike)."""
    if ranks.world <= 1:
        return model, loss_fn, evaluate, None
    unused = any(p.numel() == 0 for p in model.parameters())  # e.g. attention's numeric vectors when there are no numerics
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None,
                                                    find_unused_parameters=unused)

    def gathered(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return evaluate(distributed.gather_rows(out), distributed.gather_rows(y))

    def mean(value: float) -> float:
        return distributed.all_reduce([value])[0] / ranks.world

    return net, distributed_loss(loss_fn, ranks.world), gathered, mean


@dataclass
class Fitted:
    """A model trained on encoded rows, with what the run records about that training."""

    model: WideDeep
    result: TrainResult
    monitor: str  # the validation figure that chose the best epoch
    amp: str | None  # the autocast dtype on a GPU
    device_resident: bool  # the training rows were held on the GPU


def fit_model(spec: Spec, prep: Preprocessor, train_rows: RankRows, val_rows: RankRows, device: str, local_batch: int,
              labels_vary: bool = True, ranks: Ranks | None = None, listeners: Iterable[Callable[[Progress], None]] = (),
              stop_event: threading.Event | None = None) -> Fitted:
    """The model of ``spec`` trained on rows already encoded by ``prep``: built on ``device``,
    its optimisers and loss, the rows moved to the device when they fit there, the trainer
    run.  ``labels_vary`` is False when the validation labels are all alike (no AUC then)."""
    ranks = ranks or Ranks()
    t = spec.train
    budget = device_budget(device)  # on a GPU the rows move there once (or stream through pinned memory)
    train_batches = on_device(train_rows.batches, device, budget)
    val_batches = on_device(val_rows.batches, device, budget - (train_batches.nbytes() if isinstance(train_batches, TensorBatches) else 0))
    monitor = auto_monitor(prep.task) if t.monitor == "auto" else t.monitor
    if monitor == "auc" and not labels_vary:
        monitor = "logloss"
    check_layout(prep.layout(), spec.model)  # refused by arithmetic, before a weight is allocated
    # dense wide gradients on a GPU: a dense update of even millions of weights is one cheap
    # kernel there, while coalescing sparse ones sorts every step (and nccl cannot all-reduce them)
    sparse = True if t.wide_optimizer == "sparse_adam" else (False if device.startswith("cuda") else None)
    model = WideDeep(prep.layout(), spec.model, sparse_wide=sparse, seed=t.seed).to(device)
    if ranks.world > 1:
        model.reseed_dropout(t.seed + ranks.rank)  # the same start everywhere, then each rank its own dropout masks
    optimizers, after_step = build_optimizers(model, t, spec.model.wide_l1)
    loss_fn = task_loss(prep, t.positive_weight, t.class_weight, device)
    net, loss_fn, evaluate, mean = replicate(model, loss_fn, make_evaluator(prep), device, ranks)
    config = TrainerConfig(epochs=t.epochs, batch_size=local_batch, warmup_steps=t.warmup_steps, grad_clip=t.grad_clip,
                           early_stopping_patience=t.early_stopping_patience, plateau_patience=t.plateau_patience,
                           plateau_factor=t.plateau_factor, monitor=monitor, device=device, mixed_precision=t.mixed_precision,
                           seed=t.seed, max_seconds=60.0 * t.max_minutes)
    trainer = Trainer(net, loss_fn, optimizers, config, evaluate, model.deep_parameters(), after_step, mean)
    trainer.listeners.extend(listeners)
    if stop_event is not None:
        trainer.stop_event = stop_event
    try:
        result = trainer.fit(train_batches, val_batches)
    except TrainingDiverged as exc:
        suspects = extreme_columns(prep, train_rows.sample)
        raise TrainingDiverged(f"{exc}{'; suspect column(s): ' + ', '.join(suspects) if suspects else ''}") from None
    amp = str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype is not None else None
    return Fitted(model, result, monitor, amp, isinstance(train_batches, TensorBatches) and train_batches.device.type != "cpu")


def train(
    spec: Spec,
    ws: Workspace,
    out_dir: str | Path | None = None,
    listeners: Iterable[Callable[[Progress], None]] = (),
    stop_event: threading.Event | None = None,
    ranks: Ranks | None = None,
    preprocessing: dict[str, Any] | None = None,
    score_test: bool = True,
) -> Outcome:
    """Train ``spec`` on the workspace's rows; write the run to ``out_dir`` when given.
    ``score_test=False`` (a tuning trial) leaves the test rows unscored.

    With ``ranks`` (a torchrun process) it trains one DistributedDataParallel replica on its
    shard; rank 0 alone writes the run.  ``preprocessing`` is a fitted preprocessor's state,
    shipped by the launcher; without it the preprocessing is fitted here (on rank 0 only)."""
    started = time.perf_counter()
    ranks = ranks or Ranks()
    t = spec.train
    device = resolve_device(t.device)
    if ranks.world > 1:
        check_processes(spec, ranks.world)
        device = distributed.start(ranks, device)
    split, streaming = prepare(spec, ws, ranks.world)
    try:  # the split's copies of the rows go when training ends, whatever the outcome
        prep = Preprocessor.from_state(preprocessing) if preprocessing else fit_once(spec, split, ranks)
        # block files only when streaming (no empty folder for in-memory training)
        with tempfile.TemporaryDirectory(prefix="wdstudio-blocks-") if streaming else contextlib.nullcontext() as spill:
            batch_size = batch_size_for(t, device, split.n_train)
            local_batch = math.ceil(batch_size / ranks.world)  # the global batch stays the same
            folder = (lambda part: Path(spill, part)) if spill else (lambda part: None)
            train_rows = rank_rows(prep, split.shard("train", ranks.rank, ranks.world), local_batch, t.seed + ranks.rank, folder("train"), stop_event)
            val_rows = rank_rows(prep, split.shard("validation", ranks.rank, ranks.world), local_batch, t.seed, folder("val"), stop_event)
            n_train, n_val, y_lo, y_hi = agree(train_rows, val_rows, ranks)
            counts = f"{sum(split.counts.values()):,} rows: {split.n_train:,} training, {split.n_val:,} validation, {split.n_test:,} test"
            if n_train == 0:
                raise StudioError(f"no training rows have a label ({counts}); load more labelled rows, or lower data.validation_fraction "
                                  "and data.test_fraction")
            if n_val == 0:
                raise StudioError(f"no validation rows have a label ({counts}); load more labelled rows, raise data.validation_fraction, "
                                  "or fix data.split / data.split_column")
            fitted = fit_model(spec, prep, train_rows, val_rows, device, local_batch, y_lo < y_hi, ranks, listeners, stop_event)
        model, result, monitor = fitted.model, fitted.result, fitted.monitor
        rows_per_s = result.rows_per_s if ranks.world <= 1 else distributed.all_reduce([result.rows_per_s])[0]
        model.cpu()
        test = score_rows(model, prep, split.test, key=True, stop_event=stop_event) if ranks.is_main and score_test else None
        metrics = {
            "task": prep.task, "monitor": monitor, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "epochs_planned": t.epochs, "stopped_early": result.stopped_early, "stopped_by_budget": result.stopped_by_budget, "train_seconds": round(result.train_seconds, 3),
            "train_rows_per_s": round(rows_per_s, 1), "total_seconds": round(time.perf_counter() - started, 3),
            "n_train": n_train, "n_val": n_val, "device": device.split(":")[0], "processes": ranks.world, "out_of_core": streaming,
            "split": split.record,
            "amp": fitted.amp, "batch_size": batch_size,
            **({"device_peak_gib": result.device_peak_gib, "device_resident": fitted.device_resident} if result.device_peak_gib is not None else {}),
            **{k: v for k, v in result.best_metrics.items() if k != "loss"},
        }
        if test is not None:  # scored once, after every decision was taken on the validation rows
            metrics.update(n_test=len(test), test=test.metrics() if len(test) else {}, test_ci=test.intervals(seed=t.seed) if len(test) else {})
        notes = list(prep.notes_) + (unknown_classes(prep, split) if prep.task == "multiclass" and ranks.is_main else [])
        if notes:
            metrics["notes"] = notes
        run_dir = (write_run(out_dir, spec, prep, model, result.history, metrics, test.table() if test is not None else None)
                   if out_dir is not None and ranks.is_main else None)
        if run_dir is not None:
            metrics["total_seconds"] = round(time.perf_counter() - started, 3)
        return Outcome(run_dir, metrics, result.history, model, prep, test)
    finally:
        split.drop()
