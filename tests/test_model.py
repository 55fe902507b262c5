import pytest
import torch

from studio_core.features.preprocess import Layout
from studio_core.model.network import WideDeep, count_parameters
from studio_core.spec.schema import ModelSpec

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


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_fast_wide_backward_gives_embedding_bags_gradient(dtype):
    """The training-time wide kernel (index_add_ backward) must equal nn.EmbeddingBag's own,
    repeated ids in a row included."""
    model = WideDeep(LAYOUT, ModelSpec(deep=False))
    ids = torch.randint(0, 50, (64, 3), dtype=dtype)
    ids[0] = 7  # the same id three times in one row
    upstream = torch.randn(64)
    (model.wide_logit(ids) * upstream).sum().backward()
    reference = torch.nn.EmbeddingBag(50, 1, mode="sum")
    (reference(ids.long()).squeeze(-1) * upstream).sum().backward()
    torch.testing.assert_close(model.wide.weight.grad, reference.weight.grad)
    assert model.wide.weight.grad[7].item() == pytest.approx(reference.weight.grad[7].item()) and reference.weight.grad[7].abs() > 0


def test_fast_dropout_keeps_the_expected_share_scales_and_masks_its_gradient():
    from studio_core.model.network import DropoutRandom, FastDropout

    drop = FastDropout(0.3, DropoutRandom(0))
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    torch.manual_seed(123)  # torch's global generator plays no part: the stream's seed fixes the mask
    torch.testing.assert_close(FastDropout(0.3, DropoutRandom(0))(x), y)
    assert not torch.equal(FastDropout(0.3, DropoutRandom(1))(x), y)
    assert drop.eval()(x) is x
