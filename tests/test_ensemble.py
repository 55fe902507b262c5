"""BatchEnsemble members in one model (issue 14, item 6): k outputs while training, their mean
logit otherwise, a loss that is the mean of the members' losses, a parameter count the size
check agrees with, and a saved, exported model that scores as the trained one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from studio_core.export.bundle import export_bundle
from studio_core.export.onnx_run import PARITY_TOL
from studio_core.features.preprocess import Layout
from studio_core.features.sizing import deep_params
from studio_core.model.network import WideDeep
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import ModelSpec
from studio_core.training.losses import each_member

sys.path.insert(0, str(Path(__file__).parent))
from test_export import mixed_spec, score_both, train_run, write_new_rows  # noqa: E402

LAYOUT = Layout(("a", "b", "a x b"), 50, ("a", "b"), (10, 20), (4, 6), ("x", "x (missing)"))


def _batch(n: int = 9):
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 50, (n, 3), generator=g), torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 20, (n,), generator=g)], 1),
            torch.randn(n, 2, generator=g))


def test_members_train_apart_and_predict_their_mean_logit():
    model = WideDeep(LAYOUT, ModelSpec(hidden_units=[16, 8], ensemble=4, dropout=0.0), seed=3)
    w, c, x = _batch()
    model.train()
    members = model(w, c, x)
    assert members.shape == (9, 4)
    assert torch.unique(members[0]).numel() == 4  # random-sign input scales: the members differ from the start
    model.eval()
    with torch.no_grad():
        out = model(w, c, x)
        torch.testing.assert_close(out, members.detach().mean(dim=1))  # dropout 0: the same members, averaged
        torch.testing.assert_close(out, model.wide_logit(w) + model.deep_logit(c, x) + model.bias)  # still wide + deep
    assert model.member_scale.shape == (4, 4 + 6 + 2) and set(model.member_scale.unique().tolist()) == {-1.0, 1.0}


def test_the_ensemble_loss_is_the_mean_of_the_members_losses():
    out = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    y = torch.tensor([1.0, 0.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    per_member = [bce(out[:, j], y) for j in range(3)]
    torch.testing.assert_close(each_member(bce)(out, y), torch.stack(per_member).mean())
    torch.testing.assert_close(each_member(bce)(out, y, reduction="sum"), torch.stack(per_member).mean() * 2)
    torch.testing.assert_close(each_member(bce)(out[:, 0], y), per_member[0])  # one output per row: the plain loss


@pytest.mark.parametrize("k", [1, 4])
def test_the_size_check_counts_the_members(k):
    spec = ModelSpec(hidden_units=[16, 8], ensemble=k)
    model = WideDeep(LAYOUT, spec)
    want = sum(p.numel() for p in model.parameters()) - model.wide.weight.numel() - 1  # deep_params excludes wide and bias
    assert deep_params(list(zip(LAYOUT.deep_cardinalities, LAYOUT.deep_embedding_dims)), 2, spec) == want


def test_an_ensemble_run_trains_saves_and_exports_with_parity(tmp_path):
    spec = mixed_spec(model=ModelSpec(hidden_units=[16, 8], ensemble=4))
    spec.train.epochs = 2
    run_dir, ws = train_run(tmp_path, spec)
    run = load_run(run_dir)
    assert run.model.members == 4 and run.model.head_weight.shape == (4, 8)
    again = pipeline.train(spec, ws)  # the same seed: the same members
    torch.testing.assert_close(again.model.head_weight, run.model.head_weight)
    fig = export_bundle(run_dir, tmp_path / "b.zip", ws=ws)
    assert fig["parity"]["ok"] and fig["parity"]["model_max_abs_diff"] <= PARITY_TOL
    got, want, _, _ = score_both(tmp_path / "b.zip", run_dir, write_new_rows(tmp_path / "new.csv"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=PARITY_TOL)
