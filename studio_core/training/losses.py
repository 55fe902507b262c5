"""The training losses: binary cross-entropy with a positive weight, multiclass cross-entropy
with optional balanced class weights, squared error -- and the wrappers an ensemble (a loss per
member) and several processes (a loss scaled to the global batch) need."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from studio_core.features.preprocess import Preprocessor
from studio_core.training import distributed


def task_loss(prep: Preprocessor, positive_weight: float, class_weight: str, device: str) -> Callable[..., torch.Tensor]:
    """The loss of a task: binary cross-entropy (positive rows weighted), multiclass
    cross-entropy, or squared error on the standardised label; per ensemble member."""
    if prep.task == "multiclass":
        return class_loss(prep, class_weight, device)
    return each_member(positive_weighted(positive_weight, device) if prep.task == "binary" else torch.nn.functional.mse_loss)


def positive_weighted(weight: float, device: str) -> Callable[..., torch.Tensor]:
    """Binary cross-entropy with positive rows weighted ``weight`` (1: the plain loss)."""
    if weight == 1.0:
        return torch.nn.functional.binary_cross_entropy_with_logits
    pos = torch.tensor(float(weight), device=device)
    return functools.partial(torch.nn.functional.binary_cross_entropy_with_logits, pos_weight=pos)


def class_loss(prep: Preprocessor, class_weight: str, device: str) -> Callable[..., torch.Tensor]:
    """Multiclass cross-entropy on the class index; "balanced": class k's rows weigh
    n / (K n_k) (its training rows n_k), so every class counts alike."""
    weight = None
    if class_weight == "balanced" and getattr(prep, "class_counts_", None):
        counts = torch.tensor(prep.class_counts_, dtype=torch.float32).clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)).to(device)

    def loss(output: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, target.long(), weight=weight, **kwargs)

    return loss


def each_member(loss_fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The loss of a training batch whose outputs are (rows, members) (an ensemble; see
    ``WideDeep``): the mean of the members' losses, each member scored on the row's target."""

    def loss(output: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if output.ndim == 1:
            return loss_fn(output, target, **kwargs)
        value = loss_fn(output, target.unsqueeze(1).expand_as(output), **kwargs)
        return value / output.shape[1] if kwargs.get("reduction") == "sum" else value

    return loss


def distributed_loss(loss_fn: Callable[..., torch.Tensor], world: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Each rank's summed loss over its rows times world / (rows in the global batch): after
    DistributedDataParallel averages gradients over the ranks, the step equals one process
    training on the whole global batch, even when ranks hold a row more or less."""

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rows = distributed.all_reduce([float(len(target))])[0]
        return loss_fn(output, target, reduction="sum") * (world / max(rows, 1.0))

    return loss
