"""Files named ``NAME=PATH`` into a workspace that reads only those files: for training large
data in place as views, with DuckDB's memory capped and spilling to a private temporary folder;
for a run, its training table under the name its spec reads.  The CLI's and any other
headless front end's rules for reading data."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from studio_core.common.errors import StudioError
from studio_core.data.workspace import PARQUET_SUFFIXES, Workspace
from studio_core.spec.schema import DataSpec

QUERY_TIMEOUT_S = 300.0
VIEW_BYTES = 1 << 30  # training reads CSV files larger than this in place instead of loading them


def name_and_path(item: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (a path that itself contains '=' is taken as a path)."""
    if "=" in item and not Path(item).exists():
        name, _, path = item.partition("=")
        return name, Path(path)
    return "", Path(item)


MEMORY_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_DUCKDB_MEMORY = 128 * 10**6


def duckdb_memory() -> str:
    """``WDSTUDIO_DUCKDB_MEMORY`` (default 2GB): DuckDB's memory limit while training large data."""
    import re

    text = os.environ.get("WDSTUDIO_DUCKDB_MEMORY", "2GB").strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text)
    size = float(m.group(1)) * MEMORY_UNITS[m.group(2).upper()] if m and m.group(2).upper() in MEMORY_UNITS else None
    if size is None or size < MIN_DUCKDB_MEMORY:
        raise StudioError(f"WDSTUDIO_DUCKDB_MEMORY={text!r} is not a memory size of at least 128MB; set it like 2GB or 512MB, or unset it")
    return text


def load_files(paths: list[str], sandbox: bool = False, large: bool = False) -> tuple[Workspace, list[str], list[str]]:
    """A workspace with the files loaded.  ``large`` (training) leaves Parquet files and CSV
    files over ``VIEW_BYTES`` in place as views, caps DuckDB's memory and lets it spill to
    the temporary folder, so tables larger than memory can be trained on.  DuckDB may read
    only the given files: a spec's ``data.sql`` (perhaps written by someone else) cannot read
    other files into a run's vocabularies and so into its bundle."""
    files = [name_and_path(item)[1] for item in paths]
    if sandbox:
        ws = Workspace(allowed_files=files, query_timeout_s=QUERY_TIMEOUT_S)
    elif large:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # processes on this machine under torchrun
        spill = tempfile.mkdtemp(prefix="wdstudio-duckdb-")
        atexit.register(shutil.rmtree, spill, True)
        ws = Workspace(threads=max(1, (os.cpu_count() or 1) // local), memory_limit=duckdb_memory(), temp_directory=spill,
                       allowed_files=files)
    else:
        ws = Workspace(allowed_files=files)
    names, notes = [], []
    for item in paths:
        name, path = name_and_path(item)
        as_view = large and path.is_file() and (path.suffix.lower() in PARQUET_SUFFIXES or path.stat().st_size > VIEW_BYTES)
        result = ws.load(path, name or None, as_view=as_view)
        names.append(result.table)
        notes += list(result.warnings)
    return ws, names, notes


def source_paths(tables: list[str], paths: list[str]) -> dict[str, str]:
    """``data.sources`` of a spec: each loaded table's absolute file path."""
    return {t: str(name_and_path(p)[1].resolve()) for t, p in zip(tables, paths)}


def load_run_data(data: DataSpec, items: list[str]) -> tuple[Workspace, str | None, list[str]]:
    """A workspace holding a run's training data from ``NAME=PATH`` items (a single unnamed
    file is loaded under the run's table name), the table to use in place of the spec's, and
    the loading warnings."""
    ws = Workspace(allowed_files=[name_and_path(item)[1] for item in items])
    notes: list[str] = []
    loaded = []
    for item in items:
        name, path = name_and_path(item)
        if not name and len(items) == 1 and data.table and not data.sql.strip():
            name = data.table  # the training table's name, so the spec's data section applies as is
        result = ws.load(path, name or None)
        loaded.append(result.table)
        notes += list(result.warnings)
    table = None
    if not data.sql.strip() and data.table not in loaded:
        if len(loaded) != 1:
            raise StudioError(f"the run trained on table {data.table!r}; name it in --data, e.g. --data {data.table}=PATH")
        table = loaded[0]
    return ws, table, notes

