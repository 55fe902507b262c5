"""Uploaded files into the session's workspace (the Data and Predict pages): each within the
session's disk budget, spooled to disk once, loaded under a free table name so no table is
replaced, with every warning shown."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st
from plain import plain
from state import StudioSession

from studio_core.common.errors import StudioError
from studio_core.data.datafiles import free_table_name, table_name_for
from studio_core.jobs.hub import hub


def load_uploads(s: StudioSession, files: list) -> list[str]:
    """Load ``files`` (Streamlit uploads); returns the names of the tables loaded."""
    loaded = []
    budget = hub().limits.session_disk_bytes
    with tempfile.TemporaryDirectory(prefix="wd-upload-", dir=s.spool) as spool:
        for f in files:
            if s.disk_used() + f.size > budget:
                st.error(f"{plain(f.name)}: {f.size / 2**20:,.0f} MB would take this session over its {budget / 2**30:g} GiB of disk "
                         "(WDSTUDIO_SESSION_DISK); load a smaller file or drop tables you do not need")
                continue
            path = Path(spool) / (table_name_for(f.name) + Path(f.name).suffix.lower())
            with path.open("wb") as out:
                shutil.copyfileobj(f, out)  # spooled to disk once; DuckDB reads the file
            wanted = table_name_for(f.name)
            try:
                res = s.ws.load(path, name=free_table_name(wanted, s.ws.tables()))
                s.slow_tables.discard(res.table)
                loaded.append(res.table)
                st.success(f"Loaded {plain(f.name)} as table {plain(res.table)}: {res.rows:,} rows, {res.columns} columns"
                           + (f" (a table {plain(wanted)} exists and is unchanged)" if res.table != wanted else ""))
                for w in res.warnings:
                    st.warning(plain(w))
            except StudioError as exc:
                st.error(plain(str(exc)))
    s.uploads += 1  # a fresh uploader next run: the browser-side copies of the files are released
    return loaded
