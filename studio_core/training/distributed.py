"""The few collective operations distributed training needs, over ``torch.distributed``.

A process started by ``torchrun`` (or ``wdstudio train --nproc N``, which runs torchrun) finds
its rank in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).  Backends: gloo on CPU,
nccl on CUDA.  Everything that crosses processes is a tensor -- text such as the fitted
preprocessing travels as UTF-8 bytes, never pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from studio_core.common.errors import StudioError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env() -> Ranks | None:
    """This process's place in a torchrun job, or None when it was not started by one."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device: str) -> str:
    """Join the process group; returns the device this rank trains on.  The group's timeout
    (``WDSTUDIO_DIST_TIMEOUT_S``, default 2 h) covers rank 0 fitting the preprocessing on a
    large table while the others wait for it."""
    if device == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise StudioError(f"process {ranks.local_rank} of this machine has no GPU of its own ({torch.cuda.device_count()} here); "
                              "start at most one process per GPU (--nproc / --nproc-per-node) or set train.device to 'cpu'")
        torch.cuda.set_device(ranks.local_rank)
        device = f"cuda:{ranks.local_rank}"
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("WDSTUDIO_DIST_TIMEOUT_S", "7200")))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=ranks.rank, world_size=ranks.world, timeout=timeout)
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_text(text: str | None, src: int = 0) -> str:
    """``text`` from rank ``src`` on every rank (other ranks pass None)."""
    data = torch.frombuffer(bytearray((text or "").encode("utf-8")), dtype=torch.uint8) if text else torch.zeros(0, dtype=torch.uint8)
    size = torch.tensor([len(data)], dtype=torch.int64, device=_device())
    dist.broadcast(size, src)
    buf = data.to(_device()) if dist.get_rank() == src else torch.empty(int(size.item()), dtype=torch.uint8, device=_device())
    dist.broadcast(buf, src)
    return bytes(buf.cpu().numpy()).decode("utf-8")


def all_reduce(values: list[float], op: str = "sum") -> list[float]:
    """Element-wise sum / max / min of ``values`` over the ranks."""
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t, {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return [float(v) for v in t.cpu()]


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """The rows of ``t`` from every rank, concatenated in rank order (sizes may differ)."""
    device = _device()
    n = torch.tensor([len(t)], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=device)
    padded[: len(t)] = t.to(device)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).cpu()
