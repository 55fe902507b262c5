"""Bounded reads of files a user names: regular files only, at most a size, decompression capped.

``--spec /dev/zero`` or a 10 GB "spec" must not eat the process's memory, a FIFO must not hang
it, and a zip bundle whose members claim terabytes must be refused before a byte is inflated.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from studio_core.common.errors import StudioError

MAX_JSON_BYTES = int(float(os.environ.get("WDSTUDIO_MAX_JSON_BYTES", 256 * 2**20)))  # a spec, preprocess.json, metrics
MAX_ARCHIVE_BYTES = int(float(os.environ.get("WDSTUDIO_MAX_ARCHIVE_BYTES", 4 * 2**30)))  # a bundle, all members inflated


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def check_regular(path: str | Path, what: str) -> int:
    """The size of ``path``, or a StudioError when it is missing or not a regular file (a
    device, FIFO or folder: reading those could block or never end)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StudioError(f"cannot read {what} {path} ({exc.strerror or type(exc).__name__}); pass an existing file") from None
    if not stat.S_ISREG(st.st_mode):
        raise StudioError(f"{what} {path} is not a regular file (a device, pipe or folder); pass a file")
    return st.st_size


def read_text(path: str | Path, what: str, limit: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes."""
    size = check_regular(path, what)
    if size > limit:
        raise StudioError(f"{what} {path} is {_mb(size)}, more than the {_mb(limit)} such a file may have; pass the right file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise StudioError(f"cannot read {what} {path} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:  # it grew while being read
        raise StudioError(f"{what} {path} is more than {_mb(limit)}; pass the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StudioError(f"{what} {path} is not UTF-8 text; pass the JSON file it names") from None


def check_archive(z: zipfile.ZipFile, name: str, limit: int = MAX_ARCHIVE_BYTES, member_limit: int = MAX_JSON_BYTES,
                  small: tuple[str, ...] = ()) -> None:
    """Refuse a zip whose members would inflate past ``limit`` in all (``member_limit`` for the
    ``small`` text members): checked from the sizes in its directory, which ``ZipFile.read``
    never reads past."""
    infos = z.infolist()
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise StudioError(f"{name}: its files would inflate to {_mb(total)}, more than the {_mb(limit)} allowed "
                          "(WDSTUDIO_MAX_ARCHIVE_BYTES); pass a bundle written by `wdstudio export`")
    for i in infos:
        if i.filename in small and i.file_size > member_limit:
            raise StudioError(f"{name}: {i.filename} would inflate to {_mb(i.file_size)}, more than {_mb(member_limit)}; "
                              "pass a bundle written by `wdstudio export`")
