"""Where the trainer's batches come from: tensors in memory, or encoded blocks on disk.

Both sources hand out whole batches sliced from pre-built arrays -- never a row at a time.
``TensorBatches`` permutes in-memory tensors once per epoch.  ``BlockBatches`` is the
out-of-core path: rows were encoded once into fixed-size block files; each epoch visits the
blocks in a seeded random order, pools a few of them, permutes the pooled rows and slices
batches, so memory is bounded by ``pool_blocks`` blocks whatever the row count.

On a GPU the rows live on the device: ``TensorBatches(..., device=...)`` moves the tensors
there once (ids as int32) and shuffles and slices them there, so a step copies nothing from the
host; ``on_device`` does the same for block files that fit in the device's memory.  Blocks
that do not fit stream through ``Prefetch``: a reader thread loads and permutes the next pools
into pinned memory while the device trains on the current batch, and the trainer copies each
batch with ``non_blocking=True``.

``steps`` fixes the number of batches per epoch.  Distributed ranks hold slightly different
row counts; each passes the same ``steps`` (from the largest rank), so every rank takes the same
number of optimiser steps and all of its rows are still used once per epoch.
"""

from __future__ import annotations

import json
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio_core.features.preprocess import Encoded

ARRAYS = ("wide", "cat", "num", "y")
BLOCK_ROWS = 65_536  # rows per block file: ~20 MB for a Criteo-sized row


def batch_sizes(n: int, batch_size: int, steps: int | None = None) -> list[int]:
    """Sizes of the batches one epoch of ``n`` rows is cut into: ``batch_size`` each with a
    smaller last one, or, when ``steps`` is larger than that gives, ``steps`` near-equal ones."""
    natural = max(1, math.ceil(n / batch_size))
    if steps is None or steps == natural:
        return [min(batch_size, n - i * batch_size) for i in range(natural)] if n else [0]
    if steps < natural:
        raise ValueError(f"{n} rows need at least {natural} batches of {batch_size}, not {steps}")
    return [n // steps + (1 if i < n % steps else 0) for i in range(steps)]


def device_tensor(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; off the CPU, integer ids as int32 (every embedding kernel takes
    them, and they take half the memory and bandwidth of int64)."""
    if device.type != "cpu" and t.dtype == torch.int64 and (t.numel() == 0 or int(t.max()) < 2**31):
        t = t.to(torch.int32)
    return t.to(device)


class TensorBatches:
    """Rows held as tensors (inputs..., target): a seeded permutation per epoch, then slices.
    With ``device``, the tensors are moved there once and the permutation is drawn there (a
    generator on that device), so batches never leave it; on the CPU nothing changes."""

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, seed: int = 0, steps: int | None = None,
                 device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else (tensors[0].device if len(tensors) else torch.device("cpu"))
        self.tensors = [device_tensor(t, self.device) for t in tensors] if device is not None else list(tensors)
        self.batch_size, self.steps_ = batch_size, steps
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    @property
    def n_rows(self) -> int:
        return len(self.tensors[0])

    def steps(self) -> int:
        return len(batch_sizes(self.n_rows, self.batch_size, self.steps_))

    def epoch(self, epoch: int) -> Iterator[list[torch.Tensor]]:
        """Shuffled training batches (the permutation stream depends only on the seed)."""
        perm = torch.randperm(self.n_rows, generator=self.generator, device=self.device)
        shuffled = [t[perm] for t in self.tensors]
        start = 0
        for size in batch_sizes(self.n_rows, self.batch_size, self.steps_):
            yield [t[start : start + size] for t in shuffled]
            start += size

    def in_order(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        for start in range(0, self.n_rows, batch_size):
            yield [t[start : start + batch_size] for t in self.tensors]


def to_tensors(arrays: Iterable[np.ndarray | None]) -> list[torch.Tensor]:
    """Model inputs (+ target) as tensors; ids widened to int64 for the embedding kernels."""
    out = []
    for a in arrays:
        if a is None:
            continue
        t = torch.from_numpy(np.ascontiguousarray(a))
        out.append(t.long() if t.dtype == torch.int32 else t)
    return out


class BlockWriter:
    """Writes encoded rows as blocks of exactly ``block_rows`` rows (the last may be short), one
    raw file per array (``block-NNNNN.wide`` ...: ids as int32, values as float32), their dtypes,
    trailing shapes and row counts in ``blocks.json``; nothing pickled.  Raw files rather than
    ``.npy``/``.npz``: ``np.load`` parses each header with ``ast``, and CPython 3.11 can fail
    with "AST constructor recursion depth mismatch" when two threads do that at once (the
    reader threads of ``Prefetch`` and ``to_device``; seen in this project's test suite)."""

    def __init__(self, folder: str | Path, block_rows: int):
        self.folder, self.block_rows = Path(folder), block_rows
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[Encoded] = []
        self.pending_rows, self.n_blocks, self.n_rows = 0, 0, 0
        self.sizes: list[int] = []
        self.arrays: dict[str, dict] = {}  # name -> {"dtype": ..., "shape": trailing shape}

    def add(self, enc: Encoded) -> None:
        self.pending.append(enc)
        self.pending_rows += len(enc)
        if self.pending_rows >= self.block_rows:
            joined = self._join()
            at = 0
            while self.pending_rows - at >= self.block_rows:
                self._write([a[at : at + self.block_rows] if a is not None else None for a in joined])
                at += self.block_rows
            rest = [a[at:] if a is not None else None for a in joined]
            self.pending, self.pending_rows = ([Encoded(*rest)] if len(rest[0]) else []), len(rest[0])

    def close(self, empty: Encoded | None = None) -> dict[str, int]:
        """Write the last block.  With no rows at all, ``empty`` (zero rows, the right
        columns) becomes one empty block, so the part still yields its agreed number of
        (empty) batches -- a distributed rank may hold no rows."""
        if self.pending_rows:
            self._write(self._join())
            self.pending, self.pending_rows = [], 0
        elif self.n_blocks == 0 and empty is not None:
            self._write([getattr(empty, name) for name in ARRAYS])
        meta = {"n_rows": self.n_rows, "n_blocks": self.n_blocks, "block_rows": self.block_rows}
        (self.folder / "blocks.json").write_text(json.dumps({**meta, "sizes": self.sizes, "arrays": self.arrays}))
        return meta

    def _join(self) -> list[np.ndarray | None]:
        if len(self.pending) == 1:
            return [getattr(self.pending[0], name) for name in ARRAYS]
        return [np.concatenate([getattr(e, name) for e in self.pending]) if getattr(self.pending[0], name) is not None else None for name in ARRAYS]

    def _write(self, arrays: list[np.ndarray | None]) -> None:
        block = {name: a for name, a in zip(ARRAYS, arrays) if a is not None}
        for key in ("wide", "cat"):
            if block[key].size and block[key].max() >= 2**31:
                raise ValueError(f"{key} ids reach {block[key].max()}, beyond int32; lower hash_buckets")
            block[key] = block[key].astype(np.int32)
        for name, a in block.items():
            a = np.ascontiguousarray(a)
            self.arrays.setdefault(name, {"dtype": a.dtype.str, "shape": list(a.shape[1:])})
            a.tofile(self.folder / f"block-{self.n_blocks:05d}.{name}")
        self.sizes.append(len(block["wide"]))
        self.n_blocks += 1
        self.n_rows += len(block["wide"])


class Prefetch:
    """Runs an iterator of batches in a reader thread, ``depth`` batches ahead, so reading and
    shuffling blocks overlaps the device's work.  With ``pin``, each batch is put in pinned
    memory, which ``tensor.to(device, non_blocking=True)`` copies without holding the host.
    An error in the reader is raised in the consumer; a consumer that stops early (``close``,
    or the generator being dropped) ends the reader too."""

    def __init__(self, source: Iterable[Sequence[torch.Tensor]], depth: int = 4, pin: bool = False):
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self.stopped = threading.Event()
        self.pin = pin
        self.thread = threading.Thread(target=self._read, args=(iter(source),), daemon=True, name="wdstudio-prefetch")
        self.thread.start()

    _END = object()

    def _put(self, item: Any) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, source: Iterator[Sequence[torch.Tensor]]) -> None:
        try:
            for batch in source:
                batch = [t.pin_memory() for t in batch] if self.pin else list(batch)
                if not self._put(batch):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        try:
            while True:
                item = self.queue.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.stopped.set()


class BlockBatches:
    """Encoded rows in block files, read a few blocks at a time (see the module docstring).
    ``prefetch`` > 0 reads that many batches ahead in a thread (``Prefetch``), pinned for a GPU."""

    def __init__(self, folder: str | Path, batch_size: int, seed: int = 0, pool_blocks: int = 8, steps: int | None = None,
                 prefetch: int = 0, pin: bool = False):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "blocks.json").read_text())
        self.n_rows, self.n_blocks = int(meta["n_rows"]), int(meta["n_blocks"])
        self.sizes = [int(n) for n in meta["sizes"]]
        self.arrays = [(name, np.dtype(meta["arrays"][name]["dtype"]), tuple(meta["arrays"][name]["shape"])) for name in ARRAYS
                       if name in meta["arrays"]]
        self.batch_size, self.pool_blocks, self.steps_ = batch_size, max(1, pool_blocks), steps
        self.prefetch, self.pin = prefetch, pin
        self.rng = np.random.default_rng(seed)

    def _block(self, i: int) -> list[np.ndarray]:
        """Block ``i``'s arrays, read straight from their raw files (no header to parse)."""
        return [np.fromfile(self.folder / f"block-{i:05d}.{name}", dtype=dtype).reshape(self.sizes[i], *shape)
                for name, dtype, shape in self.arrays]

    def steps(self) -> int:
        return len(batch_sizes(self.n_rows, self.batch_size, self.steps_))

    def epoch(self, epoch: int) -> Iterator[list[torch.Tensor]]:
        if self.prefetch > 0:
            return iter(Prefetch(self._epoch(), self.prefetch, self.pin))
        return self._epoch()

    def _epoch(self) -> Iterator[list[torch.Tensor]]:
        order = self.rng.permutation(self.n_blocks)
        sizes = iter(batch_sizes(self.n_rows, self.batch_size, self.steps_))
        carry: list[np.ndarray] | None = None
        want = next(sizes)
        for start in range(0, self.n_blocks, self.pool_blocks):
            arrays = []  # let the previous pool go before the next one is read
            pooled = [self._block(int(i)) for i in order[start : start + self.pool_blocks]]
            perm = self.rng.permutation(sum(len(b[0]) for b in pooled))
            for k in range(len(pooled[0])):
                arrays.append(np.concatenate([b[k] for b in pooled])[perm])
                for b in pooled:
                    b[k] = None
            pooled = []
            if carry is not None:  # rows left over from the previous pool lead this one
                arrays = [np.concatenate([c, a]) for c, a in zip(carry, arrays)]
            at = 0
            while want is not None and len(arrays[0]) - at >= want:
                yield to_tensors(a[at : at + want] for a in arrays)
                at += want
                want = next(sizes, None)
            carry = [a[at:] for a in arrays]

    def in_order(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        if self.prefetch > 0:
            return iter(Prefetch(self._in_order(batch_size), self.prefetch, self.pin))
        return self._in_order(batch_size)

    def _in_order(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        for i in range(self.n_blocks):
            arrays = self._block(i)
            for start in range(0, len(arrays[0]), batch_size):
                yield to_tensors(a[start : start + batch_size] for a in arrays)

    def nbytes(self, device: torch.device) -> int:
        """Bytes the rows take as tensors on ``device`` (ids int32 off the CPU, int64 on it)."""
        if self.n_blocks == 0:
            return 0
        first = self._block(0)
        per_row = sum((a.dtype.itemsize if a.dtype.kind == "f" or device.type != "cpu" else 8) * (a[0].size if len(a) else 0)
                      for a in first)
        return per_row * self.n_rows

    def to_device(self, device: torch.device, threads: int = 4) -> TensorBatches:
        """Every block read once (``threads`` at a time, a few blocks in host memory at most)
        and copied into tensors on ``device``, served from there from then on: the same rows,
        batch size and steps, a seed drawn from this source's."""
        first = self._block(0)
        columns = [torch.empty((self.n_rows, *a.shape[1:]), dtype=torch.from_numpy(a[:0]).dtype, device=device) for a in first]
        at, window = 0, max(1, threads) * 2
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for start in range(0, self.n_blocks, window):
                for arrays in pool.map(self._block, range(start, min(start + window, self.n_blocks))):
                    n = len(arrays[0])
                    for column, a in zip(columns, arrays):
                        column[at : at + n].copy_(torch.from_numpy(a))
                    at += n
        return TensorBatches(columns, self.batch_size, int(self.rng.integers(2**31)), self.steps_, device)


def on_device(batches: TensorBatches | BlockBatches, device: str | torch.device, budget_bytes: int) -> TensorBatches | BlockBatches:
    """``batches`` served from ``device`` when they take at most ``budget_bytes`` there:
    in-memory tensors moved, block files read into it.  Larger block files stream through
    pinned memory from a reader thread (larger in-memory tensors are copied a batch at a time).
    On the CPU, ``batches`` as they are."""
    device = torch.device(device)
    if device.type == "cpu":
        return batches
    if isinstance(batches, TensorBatches):
        if batches.nbytes() > budget_bytes:
            return batches
        return TensorBatches(batches.tensors, batches.batch_size, int(batches.generator.initial_seed()), batches.steps_, device)
    if batches.n_rows and batches.nbytes(device) <= budget_bytes:
        return batches.to_device(device)
    batches.prefetch, batches.pin = max(batches.prefetch, 4), True
    return batches
