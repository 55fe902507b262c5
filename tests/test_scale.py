"""Out-of-core training, sharding and DistributedDataParallel (two gloo processes on the CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from conftest import ADULT, ROOT, write_synthetic
from sklearn.metrics import roc_auc_score

from studio_core.data.split import make_split, stream_split
from studio_core.data.workspace import Workspace
from studio_core.features.encoders import HashEncoder
from studio_core.features.preprocess import Encoded
from studio_core.features.suggest import suggest
from studio_core.model.network import WideDeep
from studio_core.runs.inspect import holdout
from studio_core.runs.store import load_run
from studio_core.runs.train import build_optimizers, fit_preprocessor, make_evaluator, prepare, rank_rows, train
from studio_core.spec.schema import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, NumericFeature, Spec
from studio_core.training.batches import BlockBatches, BlockWriter, TensorBatches, batch_sizes
from studio_core.training.trainer import Trainer, TrainerConfig


def _numbered(n: int, seed: int = 0) -> Encoded:
    """Encoded rows whose numeric input is the row's own number (to trace where rows go)."""
    ids = np.arange(n, dtype=np.int64)
    return Encoded(np.stack([ids % 7, ids % 5], 1), (ids % 3)[:, None], ids[:, None].astype(np.float32), (ids % 2).astype(np.float32))


def _with_ids(path: Path) -> Path:
    """The file with a leading ``id`` column (unique; not a feature: it names rows in tests)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(["id," + lines[0]] + [f"{i},{line}" for i, line in enumerate(lines[1:])]) + "\n", encoding="utf-8")
    return path


def _ids(ws: Workspace, relation: str) -> list[int]:
    return [r[0] for r in ws.con.sql(f"SELECT id FROM {relation}").fetchall()]


@pytest.mark.parametrize("splitter", [make_split, stream_split])
@pytest.mark.parametrize("world", [2, 3])
def test_rank_shards_are_disjoint_and_cover_each_part(tmp_path, splitter, world):
    ws = Workspace()
    ws.load(_with_ids(write_synthetic(tmp_path / "s.csv", n=3001)), "s")
    split = splitter(ws, DataSpec(table="s", label="target", validation_fraction=0.25))
    for part, total in (("train", split.n_train), ("val", split.n_val), ("test", split.n_test)):
        whole = set(_ids(ws, split.part(part).relation))
        shards = [_ids(ws, split.shard(part, k, world).relation) for k in range(world)]
        flat = [row for shard in shards for row in shard]
        assert len(flat) == len(set(flat)) == total  # disjoint, nothing repeated
        assert set(flat) == whole  # together they are the part
        spread = max(map(len, shards)) - min(map(len, shards))
        assert spread <= (1 if splitter is make_split else 0.2 * total / world), (part, [len(x) for x in shards])
    assert split.n_train + split.n_val + split.n_test == 3001
    assert abs(split.n_val / 3001 - 0.25) < 0.03 and abs(split.n_test / 3001 - 0.15) < 0.03


def test_stream_split_copies_no_table_and_a_query_splits_alike_whatever_order_it_returns_rows_in(tmp_path):
    ws = Workspace()
    ws.load(_with_ids(write_synthetic(tmp_path / "s.csv", n=2000)), "s")
    ws.con.execute("CREATE TABLE shuffled AS SELECT * FROM s ORDER BY hash(id * 7919)")
    cols = ["colour", "size", "x1", "x2", "target", "id"]
    a = stream_split(ws, DataSpec(table="s", label="target", split_seed=3), columns=cols)
    val_a = sorted(_ids(ws, a.val.relation))
    kinds = {r[0] for r in ws.con.sql("SELECT view_name FROM duckdb_views() WHERE view_name LIKE '__wd_data%'").fetchall()}
    assert kinds == {"__wd_data", "__wd_data_train", "__wd_data_val", "__wd_data_test"}
    assert not ws.con.sql("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '__wd_data%'").fetchall()  # a table is read in place
    c = stream_split(ws, DataSpec(table="s", label="target", split_seed=4), columns=cols)
    assert sorted(_ids(ws, c.val.relation)) != val_a
    # a query's rows: the same rows in another order, through a GROUP BY whose output order DuckDB does not fix
    found = []
    for source in ("s", "shuffled"):
        b = stream_split(ws, DataSpec(sql=f"SELECT id, colour, size, x1, x2, target FROM {source} GROUP BY ALL", label="target", split_seed=3), columns=cols)
        found.append((sorted(_ids(ws, b.val.relation)), sorted(_ids(ws, b.shard("train", 1, 2).relation))))
    assert found[0] == found[1] and len(found[0][0]) > 300
    for source in ("s", "shuffled"):  # a view made in the studio's query box is a query too
        ws.con.execute(f"CREATE OR REPLACE VIEW grouped AS SELECT id, colour, size, x1, x2, target FROM {source} GROUP BY ALL")
        b = stream_split(ws, DataSpec(table="grouped", label="target", split_seed=3), columns=cols)
        assert (sorted(_ids(ws, b.val.relation)), sorted(_ids(ws, b.shard("train", 1, 2).relation))) == found[0]
    pq = tmp_path / "s.parquet"
    ws.con.execute(f"COPY s TO '{pq}' (FORMAT parquet)")
    ws.load(pq, "from_file", as_view=True)  # a file read in place keeps its order: not copied
    stream_split(ws, DataSpec(table="from_file", label="target", split_seed=3), columns=cols)
    assert not ws.con.sql("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '__wd_data%'").fetchall()
    make_split(ws, DataSpec(table="s", label="target"))  # a later in-memory split replaces the views
    assert a.column_types == make_split(ws, DataSpec(table="s", label="target")).column_types


@pytest.mark.parametrize("query", [False, True])
def test_stream_split_draws_each_row_even_when_rows_repeat_and_ignores_the_label(tmp_path, query):
    """Few distinct feature values (72 (features, label) groups in 20,000 rows): every row is
    drawn on its own, so validation gets its share, its label rate matches training's, and it
    holds every feature combination.  Hashing the rows' values instead put whole groups on one
    side (on a similar table: 11.6 % validation instead of 20 %, 49.5 % positive against 20.8 %)."""
    rng = np.random.default_rng(0)
    n = 20_000
    device, country, pos = rng.integers(0, 3, n), rng.integers(0, 4, n), rng.integers(0, 3, n)
    y = (rng.random(n) < 0.1 + 0.1 * device + 0.05 * pos).astype(int)
    ws = Workspace()
    ws.con.register("raw", pa.table({"device": device.astype(str), "country": country.astype(str), "pos": pos.astype(str), "y": y}))
    ws.con.execute("CREATE TABLE lc AS SELECT * FROM raw")
    data = DataSpec(sql="SELECT * FROM lc", label="y") if query else DataSpec(table="lc", label="y")
    split = stream_split(ws, DataSpec(**{**data.__dict__, "validation_fraction": 0.2}), columns=["device", "country", "pos", "y"])
    assert abs(split.n_val / n - 0.2) < 0.015 and abs(split.n_test / n - 0.15) < 0.015
    rate = {part: ws.con.sql(f"SELECT avg(y), count(DISTINCT (device, country, pos)) FROM {rel.relation}").fetchall()[0]
            for part, rel in (("train", split.train), ("val", split.val))}
    assert abs(rate["val"][0] - rate["train"][0]) < 0.02, rate
    assert rate["val"][1] == rate["train"][1] == 36


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_file_read_in_place_has_the_columns_and_values_a_loaded_table_has(tmp_path, kind):
    """Training reads large files as views; predict, evaluate and the studio load tables: both
    must clean alike (numeric text -> DOUBLE, inf/nan -> NULL), or a model meets other inputs."""
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "f.parquet"
        pq.write_table(pa.table({"zip": ["00012", "00340", None, "12000"], "x": [1.0, float("inf"), float("nan"), 2.5],
                                 "word": ["a", "1", "b", None], "y": [0, 1, 0, 1]}), path)
    else:
        path = tmp_path / "f.csv"
        path.write_text("zip;x;word;y\n00012;1,5;a;0\n00340;inf;1;1\n;2;b;0\n12000;-3,25;;1\n", encoding="utf-8")
    ws = Workspace()
    loaded, in_place = ws.load(path, "tab"), ws.load(path, "vw", as_view=True)
    assert ws.table("tab").types == ws.table("vw").types
    assert ws.table("tab").types["zip"] == "DOUBLE" and ws.table("tab").types["word"] == "VARCHAR"
    assert loaded.warnings == in_place.warnings and any("inf/nan" in w for w in loaded.warnings)
    assert ws.con.sql("SELECT * FROM tab").fetchall() == ws.con.sql("SELECT * FROM vw").fetchall()
    assert {r[0] for r in ws.con.sql("SELECT table_type FROM information_schema.tables WHERE table_name = 'vw'").fetchall()} == {"VIEW"}


def test_batch_sizes_give_every_rank_the_same_number_of_steps():
    assert batch_sizes(1000, 300) == [300, 300, 300, 100]
    assert batch_sizes(1003, 250, steps=5) == [250, 250, 250, 250, 3]  # the rank with the most rows: as one process cuts them
    for n in (997, 1000):  # a rank with fewer rows: as many steps, near-equal batches
        sizes = batch_sizes(n, 250, steps=5)
        assert len(sizes) == 5 and sum(sizes) == n and max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        batch_sizes(1000, 100, steps=3)


def test_block_batches_visit_every_row_once_per_epoch_in_a_new_order(tmp_path):
    writer = BlockWriter(tmp_path / "blocks", block_rows=1000)
    for start in range(0, 10_500, 700):  # record batches that do not line up with blocks
        part = _numbered(10_500)
        writer.add(Encoded(*(a[start : start + 700] for a in (part.wide, part.cat, part.num, part.y))))
    meta = writer.close()
    assert meta == {"n_rows": 10_500, "n_blocks": 11, "block_rows": 1000}
    source = BlockBatches(tmp_path / "blocks", batch_size=256, seed=1, pool_blocks=3)
    orders = []
    for epoch in (1, 2):
        batches = list(source.epoch(epoch))
        assert [len(b[0]) for b in batches] == batch_sizes(10_500, 256)
        rows = torch.cat([b[2][:, 0] for b in batches]).long()
        assert sorted(rows.tolist()) == list(range(10_500))
        for wide, cat, num, y in batches:  # a row's arrays stay together
            r = num[:, 0].long()
            assert wide.dtype == torch.int64 and torch.equal(wide[:, 0], r % 7) and torch.equal(cat[:, 0], r % 3) and torch.equal(y, (r % 2).float())
        orders.append(rows)
    assert not torch.equal(orders[0], orders[1])
    assert abs(float(torch.corrcoef(torch.stack([orders[0].float(), torch.arange(10_500.0)]))[0, 1])) < 0.2  # mixed, not sequential
    source.steps_ = 50
    assert len(list(source.epoch(3))) == 50
    ordered = torch.cat([b[2][:, 0] for b in source.in_order(4096)]).long()
    assert torch.equal(ordered, torch.arange(10_500))


def test_a_vocabulary_larger_than_max_vocabulary_is_hashed(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ids.csv"
    n = 3000
    user = rng.integers(0, 900, n)
    path.write_text("user,x,y\n" + "".join(f"u{u},{rng.normal():.3f},{int(u % 2)}\n" for u in user), encoding="utf-8")
    ws = Workspace()
    ws.load(path, "ids")
    spec = Spec(data=DataSpec(table="ids", label="y", positive_class="1"),
                features=FeatureSpec(numeric=[NumericFeature("x")], categorical=[CategoricalFeature("user", encoding="vocab")],
                                     crosses=[CrossFeature(["user", "x"], encoding="vocab")]))
    spec.features.max_vocabulary = 200
    spec.train.epochs = 1
    outcome = train(spec, ws, tmp_path / "run")
    enc = outcome.preprocessor.encoders_["cat:user"]
    assert isinstance(enc, HashEncoder) and enc.n_ids_ == 201
    assert any("user" in note and "max_vocabulary" in note for note in outcome.metrics["notes"])
    assert outcome.preprocessor.encoders_["cross:0"].encoding == "hash" and outcome.preprocessor.encoders_["cross:0"].n_ids_ == 201
    assert any(note.startswith("cross user x x") for note in outcome.metrics["notes"])
    run = load_run(tmp_path / "run")
    assert isinstance(run.preprocessor.encoders_["cat:user"], HashEncoder)
    assert run.preprocessor.notes_ == outcome.preprocessor.notes_
    spec.features.max_vocabulary = 5000
    assert not isinstance(train(spec, ws).preprocessor.encoders_["cat:user"], HashEncoder)


def test_out_of_core_training_matches_in_memory_quality(tmp_path):
    ws = Workspace()
    ws.load(ADULT, "adult")
    spec = suggest(ws, DataSpec(table="adult", label="income")).spec
    spec.train.epochs = 2
    spec.train.out_of_core_rows = 10_000  # "auto": Adult's 48k rows count as large here
    streamed = train(spec, ws, tmp_path / "streamed")
    spec.train.out_of_core = "never"
    in_memory = train(spec, ws)
    assert streamed.metrics["out_of_core"] is True and in_memory.metrics["out_of_core"] is False
    assert streamed.metrics["n_train"] + streamed.metrics["n_val"] + streamed.metrics["n_test"] == 48842
    assert abs(streamed.metrics["auc"] - in_memory.metrics["auc"]) < 0.01
    assert streamed.metrics["auc"] > 0.9
    run = load_run(tmp_path / "streamed")  # an out-of-core run is an ordinary run
    preds, _ = run.predict(ws.table("adult"))
    assert len(preds) == 48842 and np.isfinite(preds).all()
    h = holdout(run, ws)  # Inspect's holdout is the hashed split the run trained with, not the in-memory one
    assert run.metrics["split"]["method"] == "hash" and len(h.y) == streamed.metrics["n_val"]
    assert abs(roc_auc_score(h.y, h.prediction) - streamed.metrics["auc"]) < 1e-6
    test = holdout(run, ws, "test")  # scored once at training, on rows of the same hashed split
    assert len(test.y) == streamed.metrics["n_test"] > 5000 and abs(roc_auc_score(test.y, test.prediction) - streamed.metrics["test"]["auc"]) < 1e-9
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("wdstudio-blocks-*/train"))  # the block files are gone


class _GlobalBatches:
    """Step k = the concatenation of every rank's batch k: what DDP trains on, in one process."""

    def __init__(self, per_rank: list[TensorBatches]):
        self.per_rank = per_rank
        self.n_rows = sum(b.n_rows for b in per_rank)

    def steps(self) -> int:
        return self.per_rank[0].steps()

    def epoch(self, epoch: int):
        for parts in zip(*(b.epoch(epoch) for b in self.per_rank)):
            yield [torch.cat(ts) for ts in zip(*parts)]


def _torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_two_gloo_processes_agree_and_match_one_process_on_the_same_global_batches(tmp_path):
    data = _with_ids(write_synthetic(tmp_path / "d.csv", n=2501))
    ws = Workspace(threads=1)
    ws.load(data, "t")
    spec = suggest(ws, DataSpec(table="t", label="target")).spec
    assert "id" not in spec.feature_names()
    spec.model.dropout = 0.0
    spec.model.hidden_units = [16, 8]
    spec.train.epochs, spec.train.batch_size, spec.train.warmup_steps = 3, 101, 5  # odd sizes: ranks' batches differ by a row
    spec.train.early_stopping_patience = 0
    split, _ = prepare(spec, ws, world=2)  # as the launcher splits for 2 ranks
    prep = fit_preprocessor(spec, split)
    (tmp_path / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    (tmp_path / "prep.json").write_text(json.dumps(prep.state()), encoding="utf-8")
    done = _torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(data), str(tmp_path / "spec.json"), str(tmp_path / "prep.json"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert np.array_equal(ranks[0][key], ranks[1][key]), key  # identical replicas, bit for bit

    shards = [json.loads((tmp_path / f"rank{r}.json").read_text())["rows"] for r in (0, 1)]
    train_rows = set(_ids(ws, split.train.relation))
    assert not set(shards[0]) & set(shards[1]) and set(shards[0]) | set(shards[1]) == train_rows
    assert len(shards[0]) != len(shards[1])  # the case the loss scaling exists for

    # One process, the same global batches: rank r's batches rebuilt exactly as pipeline.train builds them.
    t = spec.train
    local = math.ceil(t.batch_size / 2)
    per_rank = [rank_rows(prep, split.shard("train", r, 2), local, t.seed + r).batches for r in (0, 1)]
    steps = max(b.steps() for b in per_rank)
    for b in per_rank:
        b.steps_ = steps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(t.seed)
        model = WideDeep(prep.layout(), spec.model)
        optimizers, after_step = build_optimizers(model, t, spec.model.wide_l1)
        config = TrainerConfig(t.epochs, local, t.warmup_steps, t.grad_clip, 0, t.plateau_patience, t.plateau_factor, "auc", "cpu", False, t.seed)
        trainer = Trainer(model, torch.nn.functional.binary_cross_entropy_with_logits, optimizers, config, make_evaluator(prep),
                          model.deep_parameters(), after_step)
        trainer.fit(_GlobalBatches(per_rank), rank_rows(prep, split.val, 4096, 0).batches)
    finally:
        torch.set_num_threads(threads)
    single = {k: v.numpy() for k, v in model.state_dict().items()}
    worst = max(float(np.max(np.abs(single[k] - ranks[0][k]))) for k in single)
    assert worst < 1e-5, worst
    moved = max(float(np.max(np.abs(single[k] - WideDeep(prep.layout(), spec.model).state_dict()[k].numpy()))) for k in single if "weight" in k)
    assert moved > 1e-2  # the comparison is between trained models, not two copies of the start


def test_torchrun_without_shipped_preprocessing_fits_once_on_rank_0(tmp_path):
    data = _with_ids(write_synthetic(tmp_path / "d.csv", n=1500))
    ws = Workspace(threads=1)
    ws.load(data, "t")
    spec = suggest(ws, DataSpec(table="t", label="target")).spec
    spec.train.epochs, spec.train.batch_size, spec.train.out_of_core = 1, 128, "always"
    (tmp_path / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    done = _torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(data), str(tmp_path / "spec.json"), "-", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    states = [json.loads((tmp_path / f"rank{r}.json").read_text())["preprocessing"] for r in (0, 1)]
    split, _ = prepare(spec, ws, world=2)
    assert states[0] == states[1] == json.loads(json.dumps(fit_preprocessor(spec, split).state()))
    params = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert all(np.array_equal(params[0][k], params[1][k]) for k in params[0])


def test_a_rank_without_validation_rows_and_a_parameter_without_gradient_still_train(tmp_path):
    """One validation row in all (so one rank holds none), out of core, and field attention
    without numeric columns (its numeric vectors are an empty parameter that gets no gradient)."""
    data = _with_ids(write_synthetic(tmp_path / "d.csv", n=600))
    lines = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join([lines[0] + ",part"] + [f"{line},{'validation' if i == 0 else 'test' if i < 50 else 'train'}" for i, line in enumerate(lines[1:])]) + "\n")
    spec = Spec(data=DataSpec(table="t", label="target", positive_class="1", split="column", split_column="part"),
                features=FeatureSpec(categorical=[CategoricalFeature("colour"), CategoricalFeature("size")]))
    spec.model.attention, spec.model.hidden_units = True, [8]
    spec.train.epochs, spec.train.batch_size, spec.train.out_of_core = 2, 64, "always"
    (tmp_path / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    done = _torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(data), str(tmp_path / "spec.json"), "-", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0]["metrics"]["n_val"] == 1 and results[0]["metrics"]["monitor"] == "logloss"
    params = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert all(np.array_equal(params[0][k], params[1][k]) for k in params[0])


def test_a_rank_whose_loss_turns_nan_stops_every_rank_at_the_same_step(tmp_path):
    """Without agreeing on the loss, the NaN rank raised alone and the other waited in DDP's
    gradient all-reduce until the process group timed out."""
    import socket

    data = _with_ids(write_synthetic(tmp_path / "d.csv", n=1200))
    ws = Workspace(threads=1)
    ws.load(data, "t")
    spec = suggest(ws, DataSpec(table="t", label="target")).spec
    spec.train.epochs, spec.train.batch_size = 2, 64
    (tmp_path / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "WORLD_SIZE": "2", "WDSTUDIO_DIST_TIMEOUT_S": "60"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "diverging_worker.py"), str(data), str(tmp_path / "spec.json"), str(tmp_path)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, cwd=ROOT, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    ended = [(tmp_path / f"rank{r}.txt").read_text(encoding="utf-8") if (tmp_path / f"rank{r}.txt").exists() else errors[r][-1500:] for r in (0, 1)]
    assert all(e.startswith("TrainingDiverged: the training loss became nan at epoch 1, step 3") for e in ended), ended


def test_an_empty_block_part_still_yields_the_agreed_number_of_empty_batches(tmp_path):
    empty = Encoded(np.zeros((0, 2), np.int64), np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32), np.zeros(0, np.float32))
    writer = BlockWriter(tmp_path / "none", block_rows=100)
    assert writer.close(empty)["n_rows"] == 0
    source = BlockBatches(tmp_path / "none", batch_size=32, steps=4)
    batches = list(source.epoch(1))
    assert len(batches) == 4 and all(len(b[0]) == 0 and b[0].shape[1] == 2 for b in batches)


def test_cli_nproc_2_trains_out_of_core_and_writes_one_run(tmp_path):
    data = write_synthetic(tmp_path / "d.csv", n=3000)
    spec_out = tmp_path / "spec.json"
    subprocess.run([sys.executable, "-m", "studio_core", "suggest", "--data", str(data), "--label", "target", "--out", str(spec_out)],
                   check=True, capture_output=True, cwd=ROOT)
    spec = json.loads(spec_out.read_text())
    spec["train"].update(out_of_core="always", epochs=2, batch_size=128)
    spec_out.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "studio_core", "train", "--data", str(data), "--spec", str(spec_out), "--nproc", "2",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stdout and "Traceback" not in done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["out_of_core"] is True and metrics["auc"] > 0.8
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 3000 and metrics["test"]["auc"] > 0.8
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]

    spec["train"]["wide_optimizer"] = "sparse_adam"  # refused before any rank starts
    spec_out.write_text(json.dumps(spec))
    bad = subprocess.run([sys.executable, "-m", "studio_core", "train", "--data", str(data), "--spec", str(spec_out), "--nproc", "2",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: train.wide_optimizer 'sparse_adam' cannot be used with several processes; use 'adagrad' or 'sgd'"]
    assert not (tmp_path / "bad").exists()

    # A failure inside the ranks (both hit it at once): the launcher passes on one clean error line.
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    worse = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "studio_core", "train",
                            "--data", str(data), "--spec", str(spec_out), "--preprocessing", str(tmp_path / "broken.json"), "--out", str(tmp_path / "bad")],
                           capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    errors = [ln for ln in worse.stderr.splitlines() if ln.startswith("error: ")]
    assert errors and all(ln.count("error: ") == 1 and "--preprocessing" in ln for ln in errors), worse.stderr[-2000:]
