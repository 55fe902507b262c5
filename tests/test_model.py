import pytest
import torch

from studio_core.model import WideDeep, count_parameters
from studio_core.preprocess import Layout
from studio_core.spec import ModelSpec

LAYOUT = Layout(("a", "b", "a x b"), 50, ("a", "b"), (10, 20), (4, 6), ("x", "x (missing)"))


def batch(n=7):
    return torch.randint(0, 50, (n, 3)), torch.stack([torch.randint(0, 10, (n,)), torch.randint(0, 20, (n,))], 1), torch.randn(n, 2)


@pytest.mark.parametrize("spec", [ModelSpec(), ModelSpec(attention=True, attention_dim=8, attention_heads=2, attention_layers=2),
                                  ModelSpec(batch_norm=True), ModelSpec(wide=False), ModelSpec(deep=False)])
def test_output_is_one_value_per_row(spec):
    model = WideDeep(LAYOUT, spec)
    out = model(*batch())
    assert out.shape == (7,)
    out.sum().backward()


def test_wide_part_is_one_sparse_embedding_bag_and_sums_with_deep():
    model = WideDeep(LAYOUT, ModelSpec(hidden_units=[8]))
    assert isinstance(model.wide, torch.nn.EmbeddingBag) and model.wide.mode == "sum" and model.wide.weight.shape == (50, 1)
    w, c, x = batch()
    with torch.no_grad():
        model.wide.weight.normal_()
        model.eval()
        total = model(w, c, x)
        parts = model.wide_logit(w) + model.deep_logit(c, x) + model.bias
    torch.testing.assert_close(total, parts)
    assert model.wide_logit(w)[0].item() == pytest.approx(model.wide.weight[w[0]].sum().item(), rel=1e-5)


def test_switching_a_part_off_removes_its_parameters():
    wide_only, deep_only = WideDeep(LAYOUT, ModelSpec(deep=False)), WideDeep(LAYOUT, ModelSpec(wide=False))
    assert count_parameters(wide_only)["wide"] == 50 and count_parameters(wide_only)["deep"] == 1  # the bias
    assert count_parameters(deep_only)["wide"] == 0 and count_parameters(deep_only)["deep"] > 100
