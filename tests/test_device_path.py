"""The GPU data path's device-agnostic parts (issue 18), tested without a GPU: batches held and
shuffled on a given device, ids narrowed off the CPU, the prefetching reader, block files read
into one device's tensors, the loss read every N steps (and the NaN guard still firing within
N steps), one embedding lookup per width with the per-field layout, weights and saved runs,
the automatic batch size, and the GPU figures a run and the studio show."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from studio_core.common.errors import TrainingDiverged
from studio_core.features.preprocess import Encoded
from studio_core.jobs.training import TrainingJob
from studio_core.model.embeddings import FieldEmbeddings
from studio_core.runs.results import result_summary
from studio_core.runs.train import batch_size_for
from studio_core.spec.schema import Spec, TrainSpec
from studio_core.training.batches import BlockBatches, BlockWriter, Prefetch, TensorBatches, device_tensor, on_device
from studio_core.training.callbacks import Callback
from studio_core.training.progress import Progress
from studio_core.training.trainer import Trainer, TrainerConfig


def _rows(n: int) -> list[torch.Tensor]:
    ids = torch.arange(n, dtype=torch.int64).unsqueeze(1).repeat(1, 3)  # row r holds ids r, r, r
    return [ids, ids[:, :2].clone(), torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n, dtype=torch.float32)]


def test_batches_on_a_device_cover_every_row_once_per_epoch_with_their_own_generator():
    batches = TensorBatches(_rows(1000), 96, seed=3, device="cpu")
    assert batches.generator.device == torch.device("cpu") and all(t.device.type == "cpu" for t in batches.tensors)
    for epoch in (1, 2):
        seen = torch.cat([b[3] for b in batches.epoch(epoch)])
        assert sorted(seen.tolist()) == list(range(1000))  # each row once, rows kept whole:
        for b in batches.epoch(epoch):
            assert torch.equal(b[0][:, 0].float(), b[3]) and torch.equal(b[2][:, 0], b[3])
    again = TensorBatches(_rows(1000), 96, seed=3, device="cpu")
    assert [b[3].tolist() for b in again.epoch(1)] == [b[3].tolist() for b in TensorBatches(_rows(1000), 96, seed=3).epoch(1)]
    assert on_device(batches, "cpu", 10**9) is batches  # on the CPU nothing moves


def test_ids_are_narrowed_to_int32_off_the_cpu_only_when_they_fit():
    small, huge = torch.tensor([[1, 2**31 - 1]]), torch.tensor([[1, 2**31]])
    assert device_tensor(small, torch.device("meta")).dtype == torch.int32
    assert device_tensor(huge, torch.device("meta")).dtype == torch.int64  # exact ids beyond int32 stay int64
    assert device_tensor(small, torch.device("cpu")).dtype == torch.int64  # the CPU path is unchanged
    assert device_tensor(torch.ones(2, 2), torch.device("meta")).dtype == torch.float32


def _blocks(tmp_path, n: int = 10_500, block_rows: int = 1000) -> BlockBatches:
    writer = BlockWriter(tmp_path / "blocks", block_rows)
    wide = np.arange(n, dtype=np.int64).reshape(-1, 1).repeat(2, axis=1)
    writer.add(Encoded(wide, wide[:, :1].copy(), np.arange(n, dtype=np.float32).reshape(-1, 1), np.arange(n, dtype=np.float32)))
    writer.close()
    return BlockBatches(tmp_path / "blocks", batch_size=256, seed=1, pool_blocks=3)


def test_prefetching_reads_the_same_batches_in_a_thread(tmp_path):
    plain = [b[3].tolist() for b in _blocks(tmp_path).epoch(1)]
    ahead = _blocks(tmp_path)
    ahead.prefetch = 3
    threads = threading.active_count()
    got = [b[3].tolist() for b in ahead.epoch(1)]
    assert got == plain and sorted(sum(got, [])) == list(range(10_500))
    assert [b[3].tolist() for b in ahead.in_order(4096)] == [b[3].tolist() for b in _blocks(tmp_path).in_order(4096)]
    time.sleep(0.3)
    assert threading.active_count() <= threads  # every reader ended with its epoch


def test_a_reader_error_reaches_the_consumer_and_an_abandoned_reader_stops():
    def broken():
        yield [torch.zeros(2)]
        raise OSError("block file damaged")

    with pytest.raises(OSError, match="damaged"):
        list(Prefetch(broken(), depth=2))
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield [torch.zeros(2)]

    reader = Prefetch(endless(), depth=2)
    for _ in zip(range(3), reader):
        pass
    reader.close()
    reader.thread.join(2)
    assert not reader.thread.is_alive() and len(produced) < 20  # it stopped instead of reading on


def test_block_files_read_into_one_devices_tensors_hold_every_row(tmp_path):
    blocks = _blocks(tmp_path)
    held = blocks.to_device(torch.device("cpu"), threads=3)
    assert isinstance(held, TensorBatches) and held.n_rows == 10_500 and held.steps() == blocks.steps()
    assert torch.equal(held.tensors[3], torch.arange(10_500, dtype=torch.float32))  # in file order, every row
    assert torch.equal(held.tensors[0][:, 1].float(), held.tensors[3]) and held.tensors[0].dtype == torch.int32
    assert blocks.nbytes(torch.device("cuda")) == 10_500 * (2 * 4 + 4 + 4 + 4)  # ids int32 off the CPU
    assert blocks.nbytes(torch.device("cpu")) == 10_500 * (2 * 8 + 8 + 4 + 4)


class _Reads(Callback):
    def __init__(self):
        self.steps: list[tuple[int, int, float]] = []

    def loss(self, fit, value):
        self.steps.append((fit.window_first, fit.step, value))


def _nan_after(step: int):
    """A model whose output is NaN from training step ``step`` on."""
    calls = {"n": 0}

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(1, 1)

        def forward(self, x):
            out = self.w(x).squeeze(-1)
            if self.training:
                calls["n"] += 1
                if calls["n"] >= step:
                    out = out * float("nan")
            return out

    return Model()


def _data(n: int = 64) -> list[torch.Tensor]:
    x = torch.linspace(-1, 1, n).unsqueeze(1)
    return [x, 2 * x.squeeze(1)]


def test_the_loss_is_read_every_n_steps_and_the_nan_guard_fires_within_n_steps():
    from studio_core.training.callbacks import default_callbacks

    config = TrainerConfig(epochs=1, batch_size=4, sync_every=4, warmup_steps=0, grad_clip=0.0)  # 16 steps
    reads = _Reads()
    model = _nan_after(6)
    trainer = Trainer(model, nn.functional.mse_loss, [torch.optim.SGD(model.parameters(), lr=0.01)], config,
                      lambda out, y: {"loss": 0.0}, callbacks=default_callbacks(config) + [reads])
    with pytest.raises(TrainingDiverged, match=r"epoch 1, steps 5-8"):
        trainer.fit(_data(), _data())
    assert [(a, b) for a, b, _ in reads.steps] == [(1, 4)]  # read once before: steps 1-4; the guard stopped it at step 8


def test_reading_the_loss_every_n_steps_keeps_the_same_epoch_loss_and_records():
    def run(sync_every: int) -> tuple[list[float], list[int], _Reads]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(1, 1), nn.Flatten(0))
        config = TrainerConfig(epochs=2, batch_size=5, sync_every=sync_every, step_records_per_epoch=4)  # 13 steps an epoch
        reads = _Reads()
        trainer = Trainer(model, nn.functional.mse_loss, [torch.optim.SGD(model.parameters(), lr=0.05)], config,
                          lambda out, y: {"loss": float(((out - y) ** 2).mean())}, callbacks=[reads])
        records: list[Progress] = []
        trainer.listeners.append(records.append)
        result = trainer.fit(_data(), _data())
        return [h["train_loss"] for h in result.history], [p.step for p in records if p.kind == "step"], reads

    every, steps_every, _ = run(1)
    windowed, steps_windowed, reads = run(4)
    assert windowed == pytest.approx(every, rel=1e-6)  # the same rows, the same mean, fewer reads
    assert [b for _, b, _ in reads.steps] == [4, 8, 12, 13, 16, 20, 24, 26]  # every 4th step and at each epoch's end
    assert steps_every == [3, 6, 9, 12, 15, 18, 21, 24]
    assert steps_windowed == [4, 8, 12, 13, 16, 20, 24, 26]  # records come with reads when reads are the rarer


def test_one_lookup_per_width_gives_the_per_field_layout_weights_and_loads_old_runs():
    cards, dims = [5, 9, 4, 7, 3], [3, 4, 3, 4, 2]  # three widths, interleaved
    torch.manual_seed(11)
    reference = []
    for n, d in zip(cards, dims):  # what the model built before: nn.Embedding per field, then N(0, 0.05)
        e = nn.Embedding(n, d)
        nn.init.normal_(e.weight, std=0.05)
        reference.append(e)
    torch.manual_seed(11)
    grouped = FieldEmbeddings(cards, dims, std=0.05)
    assert len(grouped.tables) == 3 and len(grouped) == 5
    for k, e in enumerate(reference):
        assert torch.equal(grouped[k].weight, e.weight) and grouped[k].embedding_dim == dims[k]
    cat = torch.stack([torch.randint(0, n, (50,)) for n in cards], dim=1)
    expected = torch.cat([e(cat[:, k]) for k, e in enumerate(reference)], dim=1)
    assert torch.equal(grouped(cat), expected)  # field after field, as the first layer reads it
    assert all(torch.equal(a, e(cat[:, k])) for k, (a, e) in enumerate(zip(grouped.per_field(cat), reference)))
    assert torch.equal(grouped[3](cat[:, 3]), reference[3](cat[:, 3]))
    old = {f"{k}.weight": e.weight.detach() * 2 for k, e in enumerate(reference)}  # a run saved with per-field keys
    fresh = FieldEmbeddings(cards, dims)
    fresh.load_state_dict(old)
    assert torch.equal(fresh(cat), expected * 2)
    grad_check = FieldEmbeddings([6, 6], [4, 4])  # one width: no reordering, one gather
    assert grad_check.column_order is None and len(grad_check.tables) == 1
    grad_check(torch.tensor([[0, 0], [5, 1]])).sum().backward()
    g = grad_check.tables[0].grad
    assert g[0].sum() == 4 and g[5].sum() == 4 and g[6].sum() == 4 and g[7].sum() == 4 and g[1:5].abs().sum() == 0


def test_the_automatic_batch_is_512_on_a_cpu_and_grows_with_the_table_on_a_gpu():
    auto, given = TrainSpec(), TrainSpec(batch_size=300)
    assert auto.batch_size == 0 and Spec.from_json(Spec(train=auto).to_json()).train.batch_size == 0
    assert [batch_size_for(auto, "cpu", n) for n in (1_000, 34_000, 20_000_000)] == [512, 512, 512]
    assert [batch_size_for(auto, "cuda:0", n) for n in (1_000, 16_000, 34_000, 4_000_000, 20_000_000)] == [512, 1024, 2048, 8192, 8192]
    assert batch_size_for(given, "cuda", 20_000_000) == 300 and batch_size_for(given, "cpu", 10) == 300  # the spec wins


def test_a_gpu_run_shows_its_memory_while_training_and_after():
    job = TrainingJob.__new__(TrainingJob)
    seen = []
    job._progress, job.publish, job._report = None, lambda payload: None, lambda done, total, text: seen.append(text)
    job._listen(Progress("step", 2, 5, 40, 100, 0.4, rows_per_s=2_000_000, eta_s=3, device_memory_gib=1.2345))
    job._listen(Progress("step", 2, 5, 41, 100, 0.4, rows_per_s=90_000, eta_s=3))
    assert seen == ["epoch 2/5 · 2,000,000 rows/s · GPU memory 1.23 GiB · ETA 3s", "epoch 2/5 · 90,000 rows/s · ETA 3s"]
    m = {"task": "binary", "auc": 0.9, "test": {"auc": 0.91}, "test_ci": {"auc": [0.9, 0.92]}, "best_epoch": 3, "epochs_run": 5,
         "device": "cuda", "train_rows_per_s": 2_000_000, "batch_size": 2048, "device_peak_gib": 0.097}
    assert result_summary(m).endswith("cuda, 2,000,000 rows/s, batch 2,048, peak GPU memory 0.10 GiB")
    assert result_summary({**m, "device": "cpu", "device_peak_gib": None}).endswith("cpu, 2,000,000 rows/s")


def test_the_train_page_shows_a_gpu_runs_speed_batch_and_memory(tmp_path, monkeypatch, small_spec):
    """A run trained on a GPU (its metrics as the H200 recorded them) read back by the studio:
    the Train page's summary names the device, rows/s, the batch and the GPU memory peak."""
    import json
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from studio_core.jobs.hub import reset_hub
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    token = "cd" * 16
    run_dir = pipeline.train(spec, ws, tmp_path / "runs" / token / ("ab" * 16)).run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(device="cuda", train_rows_per_s=2_013_078, batch_size=8192, device_peak_gib=1.415)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "studio.py"), default_timeout=120)
    at.query_params["s"] = token
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert any("cuda, 2,013,078 rows/s, batch 8,192, peak GPU memory 1.42 GiB" in s.value for s in at.success), [s.value for s in at.success]
    lo, hi = metrics["test_ci"]["auc"]  # the run list: the test figure with its interval (issue 17)
    assert at.radio(key="run_pick").proto.captions[0] == f"test AUC {metrics['test']['auc']:.4f} [{lo:.4f}–{hi:.4f}]"
    reset_hub()


def test_block_files_are_read_without_parsing_headers_so_reader_threads_cannot_break_compile(tmp_path, monkeypatch):
    """``np.load`` parses each array header with ``ast``, and CPython 3.11 failed here with
    "AST constructor recursion depth mismatch" when the reader threads did that at once; blocks
    are raw files described by blocks.json, so no reader touches ``ast``."""
    import ast

    blocks = _blocks(tmp_path)

    def refuse(*_a, **_k):
        raise AssertionError("a block reader parsed a header with ast")

    monkeypatch.setattr(ast, "literal_eval", refuse)
    held = blocks.to_device(torch.device("cpu"), threads=4)
    assert torch.equal(held.tensors[3], torch.arange(10_500, dtype=torch.float32))
    blocks.prefetch = 2
    assert sorted(torch.cat([b[3] for b in blocks.epoch(1)]).tolist()) == list(range(10_500))
