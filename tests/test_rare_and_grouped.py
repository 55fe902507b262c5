"""Rare positives, group ids and redundant columns: what the suggestion says about them, and the
controls that answer it (positive weight, grouped split, threshold by share flagged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.features.validate import validate
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]


def rare_table(path: Path, rows: int = 6000, seed: int = 0) -> Path:
    """Rare positives (about 3 %) and a block id of 40 integer codes, 150 rows each."""
    rng = np.random.default_rng(seed)
    block = rng.integers(1, 41, rows)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    logit = -4.2 + 1.3 * x + 0.8 * (colour == "red") + rng.normal(0, 0.7, 41)[block]
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    pd.DataFrame({"block_id": block, "x": x.round(4), "colour": colour, "label": label}).to_csv(path, index=False)
    return path


def test_rare_positives_and_a_group_id_are_said_before_training(tmp_path):
    ws = Workspace()
    ws.load(str(rare_table(tmp_path / "rare.csv")))
    s = suggest(ws, DataSpec(table="rare", label="label"))
    share = pd.read_csv(tmp_path / "rare.csv").label.mean()
    assert s.positive_share == pytest.approx(share, abs=0.01)  # training rows only: close to, not equal to, the whole table's
    rare = [n for n in s.notes if n.startswith("positives (label = 1) are")]
    assert rare and f"{s.positive_share:.2%}" in rare[0] and "positive weight of" in rare[0]
    roles = {r.name: r for r in s.roles}
    assert roles["block_id"].role == "categorical" and roles["block_id"].reason.startswith("looks like a group id (40 values")
    assert s.group_columns == ["block_id"] and any("grouped split by block_id" in n for n in s.notes)
    assert not validate(s.spec, ws.table("rare"))
    grouped = suggest(ws, DataSpec(table="rare", label="label", split="group", split_column="block_id"))
    assert grouped.group_columns == [] and {r.name: r.role for r in grouped.roles}["block_id"] == "ignored"


def test_balanced_data_and_plain_numbers_get_no_such_notes(synthetic_csv):
    ws = Workspace()
    ws.load(synthetic_csv)
    s = suggest(ws, DataSpec(table="synthetic", label="target"))
    assert s.notes == [] and s.group_columns == [] and 0.1 < s.positive_share < 0.9


def test_one_to_one_columns_are_flagged_and_their_crosses_not_repeated(tmp_path):
    rng = np.random.default_rng(2)
    n = 6000
    a, b = rng.choice(list("pqrstu"), n), rng.choice(list("vwxyz"), n)
    code = {k: str(i * 7 + 3) for i, k in enumerate("pqrstu")}  # the same grouping as a, under other names
    effect = {(x, y): rng.normal(0, 1.5) for x in "pqrstu" for y in "vwxyz"}  # an interaction only a cross learns
    logit = np.array([effect[x, y] for x, y in zip(a, b)])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    pd.DataFrame({"a": a, "a_code": [f"c{code[x]}" for x in a], "b": b, "noise": rng.normal(size=n).round(3), "y": y}).to_csv(tmp_path / "t.csv", index=False)
    ws = Workspace()
    ws.load(str(tmp_path / "t.csv"))
    s = suggest(ws, DataSpec(table="t", label="y"))
    assert any(n.startswith("a and a_code are one-to-one") for n in s.notes)
    chosen = [tuple(sorted(c.columns)) for c in s.spec.features.crosses]
    assert (("a", "b") in chosen) != (("a_code", "b") in chosen), chosen  # one of the twins, not both
    assert any("left out: it groups the rows exactly as" in n for n in s.notes)


def test_positive_weight_raises_the_scores_of_rare_positives(tmp_path):
    ws = Workspace()
    ws.load(str(rare_table(tmp_path / "rare.csv")))
    spec = suggest(ws, DataSpec(table="rare", label="label")).spec
    spec.train.epochs, spec.model.hidden_units, spec.train.warmup_steps = 6, [16], 0
    means = {}
    for w in (1.0, 20.0):
        spec.train.positive_weight = w
        pipeline.train(spec, ws, tmp_path / f"run{w:g}")
        stored = load_run(tmp_path / f"run{w:g}").test_scores()
        means[w] = float(np.mean(stored.prediction))
        assert load_run(tmp_path / f"run{w:g}").metrics["test"]["average_precision"] == pytest.approx(
            average_precision_score(stored.y, stored.prediction), abs=1e-9)
    assert means[20.0] > 2 * means[1.0], means  # weighted: scores no longer calibrated, far above the unweighted ones
    spec.train.positive_weight = 0.0
    assert any(p.field == "train.positive_weight" for p in validate(spec, ws.table("rare")))


def test_inspect_sets_the_threshold_by_share_flagged_for_rare_positives(tmp_path, monkeypatch):
    from test_app import _session_with_run, load_file, load_run_of

    from studio_core.runs.inspect import threshold_for_share

    ws = Workspace()
    csv = rare_table(tmp_path / "rare.csv")
    ws.load(str(csv))
    spec = suggest(ws, DataSpec(table="rare", label="label")).spec
    spec.train.epochs, spec.model.hidden_units = 2, [16]
    at = _session_with_run(tmp_path, monkeypatch, (ws, spec), "34" * 16)
    load_file(at, str(csv))
    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert "test average precision" in labels and "precision" in labels and "recall" in labels
    assert at.radio(key="threshold_by").value == "share of rows flagged"  # rare positives: the share control first
    stored = load_run_of(at).test_scores()
    text = " ".join(m.value for m in at.markdown)
    assert f"base rate: {np.mean(stored.y):.2%} of these {len(stored.y):,} rows" in text
    at.slider(key="flag_share").set_value(10.0).run()
    got = {m.label: m.value for m in at.metric}
    threshold = threshold_for_share(stored, 0.10)  # the page shows it rounded to 4 places
    assert got["threshold"] == f"{threshold:.4f}"
    flagged = stored.prediction >= threshold
    assert abs(flagged.mean() - 0.10) < 0.01
    assert got["precision"] == f"{precision_score(stored.y, flagged):.3f}" and got["recall"] == f"{recall_score(stored.y, flagged):.3f}"


def test_an_id_seen_a_few_dozen_times_gets_a_small_embedding_and_a_sparser_one_none(tmp_path):
    """At most one embedding dimension per 4 training rows of a value (said in the reason);
    under 50 rows per value, no embedding at all; a common category keeps the usual size."""
    import re

    from studio_core.features.encoders import embedding_dim_for

    rng = np.random.default_rng(3)
    n = 24_000
    user, item, colour = rng.integers(0, 200, n), rng.integers(0, 800, n), rng.choice(["red", "green", "blue", "grey"], n)
    logit = rng.normal(0, 1, 200)[user] + 0.5 * (colour == "red")
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    path = tmp_path / "ids.csv"
    pd.DataFrame({"user_id": user, "item_id": item, "colour": colour, "label": label}).to_csv(path, index=False)
    ws = Workspace()
    ws.load(path)
    s = suggest(ws, DataSpec(table="ids", label="label"))
    cats = {c.name: c for c in s.spec.features.categorical}
    roles = {r.name: r.reason for r in s.roles}
    said = re.search(r"embedding (\d+) wide, not (\d+) \((\d+) training rows per value: at most one dimension per 4\)", roles["user_id"])
    assert said, roles["user_id"]  # about 84 rows per user
    dim, usual, rows = (int(g) for g in said.groups())
    assert cats["user_id"].deep and cats["user_id"].embedding_dim == dim == rows // 4 and usual == embedding_dim_for(201) > dim
    assert not cats["item_id"].deep and "wide only" in roles["item_id"]  # about 21 rows per item
    assert cats["colour"].embedding_dim == embedding_dim_for(5) and "embedding" not in roles["colour"]
    assert validate(s.spec, ws.table("ids")) == []
