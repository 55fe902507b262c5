"""Adult: training throughput of the engine versus a "tutorial" PyTorch loop, same model.

Both sides use the suggested Adult spec, the same split and the same fitted preprocessing, the
same ``WideDeep`` class and layer sizes, Adam (deep part, ``train.deep_lr``) + Adagrad (sparse
wide part, ``train.wide_lr``), batch size 1024, 3 epochs and ``torch.set_num_threads(2)``:

  * engine   -- ``pipeline.train`` with ``train.batch_size = 1024, train.epochs = 3``; rows/s is
                the engine's own ``train_rows_per_s`` (training loop only, validation excluded);
  * tutorial -- a ``torch.utils.data.Dataset`` whose ``__getitem__`` returns one row (wide ids,
                cat ids, numerics, label) and a default ``DataLoader(batch_size=1024, shuffle=True)``;
                plain loop (no warm-up, clipping or LR schedule); rows/s over the training loop
                only, validation after each epoch excluded.

Also reports validation AUC of both (engine: best epoch, whose weights it restores, and last
epoch; tutorial: last epoch, i.e. the model it ends with, and best epoch), the engine's rows/s
with the unchanged default spec (default batch size and epochs), and the process's peak RSS.

Acceptance target: engine rows/s >= 2.5x the tutorial's, with a validation AUC no worse.

Run: ``.venv/bin/python bench/throughput.py``
"""

from __future__ import annotations

import torch

torch.set_num_threads(2)

import copy  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from _contention import Contention  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from studio_core import pipeline  # noqa: E402
from studio_core.metrics import binary_metrics  # noqa: E402
from studio_core.model import FastDropout, WideDeep  # noqa: E402
from studio_core.preprocess import Encoded, Preprocessor  # noqa: E402
from studio_core.spec import DataSpec, Spec  # noqa: E402
from studio_core.split import make_split  # noqa: E402
from studio_core.suggest import suggest  # noqa: E402
from studio_core.workspace import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH, EPOCHS, TARGET_RATIO = 1024, 3, 2.5


class RowDataset(Dataset):
    """The usual per-row dataset: one (wide, cat, num, y) row per index, from NumPy arrays
    (as most tutorials keep them; the default collate turns rows into tensors) or, the
    stricter variant, from pre-built tensors."""

    def __init__(self, enc: Encoded, as_tensors: bool):
        conv = torch.tensor if as_tensors else (lambda a: a)
        self.wide, self.cat, self.num, self.y = conv(enc.wide), conv(enc.cat), conv(enc.num), conv(enc.y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.wide[i], self.cat[i], self.num[i], self.y[i]


def tutorial(spec: Spec, ws: Workspace, as_tensors: bool, stock_dropout: bool = False) -> dict:
    sp = make_split(ws, spec.data)
    prep = Preprocessor(spec.features, spec.data.label, spec.data.task, spec.data.positive_class, sp.column_types).fit(sp.train)
    train_enc, val_enc = prep.transform(sp.train), prep.transform(sp.val)
    torch.manual_seed(spec.train.seed)
    model = WideDeep(prep.layout(), spec.model)
    if stock_dropout:  # as a tutorial writes it: nn.Dropout, not the engine's FastDropout
        for i, layer in enumerate(model.mlp):
            if isinstance(layer, FastDropout):
                model.mlp[i] = torch.nn.Dropout(layer.p)
    deep_opt = torch.optim.Adam(model.deep_parameters(), lr=spec.train.deep_lr)
    wide_opt = torch.optim.Adagrad(model.wide_parameters(), lr=spec.train.wide_lr)
    loader = DataLoader(RowDataset(train_enc, as_tensors), batch_size=BATCH, shuffle=True)
    val = [torch.from_numpy(a) for a in (val_enc.wide, val_enc.cat, val_enc.num)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    train_s, aucs = 0.0, []
    for _ in range(EPOCHS):
        model.train()
        t0 = time.perf_counter()
        for wide, cat, num, y in loader:
            deep_opt.zero_grad()
            wide_opt.zero_grad()
            loss = loss_fn(model(wide, cat, num), y)
            loss.backward()
            deep_opt.step()
            wide_opt.step()
        train_s += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            aucs.append(binary_metrics(model(*val).numpy(), val_enc.y)["auc"])
    return {"rows_per_s": len(train_enc) * EPOCHS / train_s, "train_s": train_s, "aucs": aucs, "n_train": len(train_enc)}


def main() -> None:
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    contention = Contention()
    load = os.getloadavg()[0]
    ws = Workspace()
    table = ws.load(str(ROOT / "sample_data" / "adult.csv")).table
    base = suggest(ws, DataSpec(table=table, label="income")).spec

    spec = copy.deepcopy(base)
    spec.train.batch_size, spec.train.epochs = BATCH, EPOCHS
    eng = pipeline.train(spec, ws)
    stock = tutorial(spec, ws, as_tensors=False, stock_dropout=True)
    tut = tutorial(spec, ws, as_tensors=False)
    strict = tutorial(spec, ws, as_tensors=True)
    dflt = pipeline.train(copy.deepcopy(base), ws)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    em, dm = eng.metrics, dflt.metrics
    e_aucs = [h["val_auc"] for h in eng.history]
    print(f"Adult, {em['n_train']} train / {em['n_val']} validation rows; torch threads {torch.get_num_threads()}; "
          f"hidden units {base.model.hidden_units}; crosses {len(base.features.crosses)}; deep lr {base.train.deep_lr}, wide lr {base.train.wide_lr}")
    print(f"load average at start {load:.2f} ({os.cpu_count()} CPUs; other processes on the CPUs slow 2-thread torch down a lot)")
    print(f"batch {BATCH}, {EPOCHS} epochs each (engine keeps its warm-up {base.train.warmup_steps} steps, grad clip, LR plateau, early stopping)")
    print()
    print(f"{'':34}{'rows/s':>10}{'train s':>9}{'epochs':>8}{'AUC delivered':>15}{'AUC last ep':>13}{'AUC best ep':>13}  per-epoch AUC")
    print(f"{'engine (pipeline.train, bs 1024)':34}{em['train_rows_per_s']:10.0f}{em['train_seconds']:9.2f}{em['epochs_run']:8d}"
          f"{em['auc']:15.4f}{e_aucs[-1]:13.4f}{max(e_aucs):13.4f}  {' '.join(f'{a:.4f}' for a in e_aucs)}")
    for name, t in (("tutorial, stock nn.Dropout", stock), ("tutorial (NumPy rows, DataLoader)", tut), ("tutorial, tensor rows (stricter)", strict)):
        print(f"{name:34}{t['rows_per_s']:10.0f}{t['train_s']:9.2f}{EPOCHS:8d}"
              f"{t['aucs'][-1]:15.4f}{t['aucs'][-1]:13.4f}{max(t['aucs']):13.4f}  {' '.join(f'{a:.4f}' for a in t['aucs'])}")
    d_aucs = [h["val_auc"] for h in dflt.history]
    print(f"{'engine default spec (bs ' + str(base.train.batch_size) + ')':34}{dm['train_rows_per_s']:10.0f}{dm['train_seconds']:9.2f}"
          f"{dm['epochs_run']:8d}{dm['auc']:15.4f}{d_aucs[-1]:13.4f}{max(d_aucs):13.4f}  {' '.join(f'{a:.4f}' for a in d_aucs)}")
    print("(AUC delivered: engine restores its best epoch's weights; the tutorial loop ends with its last epoch)")
    print()
    ratio = em["train_rows_per_s"] / tut["rows_per_s"]
    print(f"throughput ratio engine / tutorial at batch {BATCH}: {ratio:.2f}x -> target >= {TARGET_RATIO}x: {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    print(f"throughput ratio engine / tutorial with stock nn.Dropout: {em['train_rows_per_s'] / stock['rows_per_s']:.2f}x (reported, no target)")
    print(f"throughput ratio engine / stricter tensor-row tutorial: {em['train_rows_per_s'] / strict['rows_per_s']:.2f}x (reported, no target)")
    d = em["auc"] - tut["aucs"][-1]
    print(f"validation AUC engine - tutorial (delivered models): {d:+.4f} -> engine no worse: {'PASS' if d >= 0 else 'FAIL'}; "
          f"best epoch vs best epoch: {max(e_aucs) - max(tut['aucs']):+.4f}")
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")
    print(contention.report())


if __name__ == "__main__":
    main()
