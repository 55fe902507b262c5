"""What a data file is before DuckDB reads it: its kind (by suffix), its text encoding, whether
it is text at all, the NULL spellings a CSV may use, and the table name a file gets."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

NULL_MARKERS = ("", "NA", "N/A", "n/a", "null", "NULL", "Null", "nan", "NaN", "NAN", "None")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_name_for(path: str | Path) -> str:
    """A safe table name from a file name: ``Sales Data-2024.csv`` -> ``sales_data_2024``."""
    stem = Path(path).name
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES + (".gz", ".zst"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^0-9A-Za-z_]+", "_", stem).strip("_").lower() or "table"
    return f"t_{name}" if name[0].isdigit() else name


def free_table_name(name: str, taken: list[str] | set[str]) -> str:
    """``name`` if no table has it (compared case-blind, as DuckDB does), else the first free
    ``name_2``, ``name_3``, ...: loading a file never replaces a table the user already has."""
    used = {t.lower() for t in taken}
    if name.lower() not in used:
        return name
    n = 2
    while f"{name}_{n}".lower() in used:
        n += 1
    return f"{name}_{n}"


def detect_encoding(path: Path) -> str:
    """'utf-16' for a file with a UTF-16 byte-order mark, 'utf-8' if the whole file decodes as
    UTF-8 (BOM allowed), else 'latin-1'."""
    with path.open("rb") as fh:
        if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return "latin-1"
    return "utf-8"


def looks_binary(path: Path) -> bool:
    """True when the first 64 KiB hold NUL bytes or more than 1 % control characters."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control > len(head) * 0.01


def header_fields(path: Path, encoding: str, max_bytes: int = 16 * 2**20) -> int:
    """The number of fields in the file's first line (the most any of , ; tab | gives, outside
    quoted names), read from at most ``max_bytes``."""
    with path.open("rb") as fh:
        raw = fh.read(max_bytes)
    first = next(iter(raw.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()), "")
    bare = re.sub(r'"[^"]*"', "", first)
    return max(bare.count(d) for d in (",", ";", "\t", "|")) + 1
