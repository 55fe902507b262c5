"""A run folder's rules, without torch: the marker every run gets, and which folders a run may
replace (an empty one or an earlier run, nothing else).  The CLI checks ``--out`` with these
before training starts, in the launcher too, which never imports torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from studio_core.common.errors import StudioError
from studio_core.common.files import read_text
from studio_core.spec.schema import Spec

RUN_MARKER = ".wdstudio-run"  # written last into every run directory: only such a folder is ever replaced


def is_run_dir(path: str | Path) -> bool:
    """A complete run directory written by this tool (its marker file is there)."""
    return (Path(path) / RUN_MARKER).is_file()


def check_out_dir(out: str | Path) -> None:
    """Refuse a run folder that cannot take a run: an existing file, a folder that is neither
    empty nor a run directory written by this tool (a run there is replaced; nothing else ever
    is), or a place that cannot be created.  ``write_run`` applies it when it writes; the CLI
    applies it before any training."""
    path = Path(out)
    if path.is_symlink() or (path.exists() and (not path.is_dir() or (not is_run_dir(path) and any(path.iterdir())))):
        raise StudioError(f"{out} exists and is not a run directory written by wdstudio (no {RUN_MARKER} file in it); "
                          "choose another --out (only an empty folder or an earlier run is replaced)")
    parent = next((a for a in (path, *path.parents) if a.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise StudioError(f"{out} cannot be created ({parent} is not a writable folder); choose another --out")


def run_record(path: str | Path) -> tuple[Spec, dict[str, Any]]:
    """A run folder's spec and metrics, read without loading its model (or torch); a folder
    that is not a run written by wdstudio is refused with what to pass instead."""
    path = Path(path)
    if not is_run_dir(path):
        raise StudioError(f"{path} is not a run directory written by wdstudio; pass the --out folder of `wdstudio train`")
    return Spec.from_json(read_text(path / "spec.json", "spec.json")), json.loads(read_text(path / "metrics.json", "metrics.json"))
