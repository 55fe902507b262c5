"""Values of an Arrow column as codes: its distinct values with per-row indices, and their hashes.

Shared by the column encoders and the token encoder: string work is done once per distinct
value, never per row.
"""

from __future__ import annotations

from typing import Any

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_SEED = 0


def dictionary_codes(values: pa.Array | pa.ChunkedArray) -> tuple[list[Any], np.ndarray]:
    """Distinct values and per-row indices (-1 for NULL) of an Arrow column."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.null_count:
        indices = np.where(encoded.is_null().to_numpy(zero_copy_only=False), -1, indices)
    return encoded.dictionary.to_pylist(), indices.astype(np.int64)


def hash_text(values: list[Any]) -> np.ndarray:
    """Unsigned 32-bit MurmurHash3 (x86_32, seed 0) of each value's UTF-8 text."""
    return np.array([mmh3.hash(str(v), HASH_SEED, signed=False) for v in values], dtype=np.int64)
