"""The CLI's data arguments: the one ``error:`` line, warnings one line each, and the data
section built from ``--table`` / ``--sql`` / ``--label`` (loading itself: ``data.load``)."""

from __future__ import annotations

import argparse
import sys

from studio_core.common.errors import StudioError
from studio_core.spec.schema import DataSpec


def _error(message: str) -> None:
    """The one error line, written in one call: ranks sharing a pipe cannot interleave it."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _data_spec(args: argparse.Namespace, tables: list[str], base: DataSpec | None = None) -> DataSpec:
    data = DataSpec(**vars(base)) if base else DataSpec()
    if getattr(args, "sql", None):
        data.sql, data.table = args.sql, ""
    elif getattr(args, "table", None):
        data.table = args.table
    elif not data.table and not data.sql:
        data.table = tables[0] if tables else ""
    elif data.table and not data.sql and tables and data.table not in tables:
        raise StudioError(f"the spec reads table {data.table!r}, but the data loaded is {', '.join(map(repr, tables))}; "
                          f"name it with --data {data.table}=PATH, or pass --table {tables[0]}")
    if getattr(args, "label", None):
        data.label = args.label
    if not data.label:
        raise StudioError("no label given; pass --label COLUMN")
    return data
