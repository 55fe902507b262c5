"""What training publishes as it goes: immutable ``Progress`` records (no torch here, so the
charts, the CLI's printer and the studio read them without importing the trainer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Progress:
    """One immutable progress record: kind is "step", "epoch" or "end"."""

    kind: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    train_loss: float | None
    val: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    lrs: tuple[float, ...] = ()
    rows_per_s: float = 0.0
    eta_s: float = 0.0
    elapsed_s: float = 0.0
    message: str = ""
    device_memory_gib: float | None = None  # on a GPU: the most memory training has allocated there
