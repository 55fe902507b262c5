"""Building a run's ONNX bundle as a background ``Task``, for the studio's Export page.

The bundle (graphs checked against the engine, optional INT8, model card) is written to a
temporary file and returned as bytes with its figures, so the page can show the parity figures
before any download button appears.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio_core.data.workspace import Workspace
from studio_core.jobs.tasks import Report, Slots, Task
from studio_core.runs.lightgbm_run import LightGBMRun
from studio_core.runs.store import Run


@dataclass(frozen=True)
class BuiltBundle:
    zip_bytes: bytes
    graphs: dict[str, bytes]  # the ONNX files inside, for single-file downloads
    figures: dict[str, Any]


def export_task(run: Run | LightGBMRun, ws: Workspace | None, int8: bool, slots: Slots | None = None) -> Task:
    """A started task exporting ``run`` (a network run, or a ``LightGBMRun``); ``ws`` (a fork)
    holds its training data, or None for synthetic parity rows."""

    def work(report: Report, stop: threading.Event) -> BuiltBundle:
        import zipfile

        from studio_core.export.bundle import export_bundle

        report(0, 1, "exporting and checking against onnxruntime")
        with tempfile.TemporaryDirectory(prefix="wd-export-") as tmp:
            path = Path(tmp) / "bundle.zip"
            try:
                if isinstance(run, LightGBMRun):  # its trees, no INT8
                    from studio_core.export.lightgbm_bundle import export_lightgbm_bundle

                    figures = export_lightgbm_bundle(run, path, ws, None)
                else:
                    figures = export_bundle(run, path, ws, None, int8=int8, stop=stop)
            finally:
                if ws is not None:
                    ws.con.close()  # the task's cursor on the session's database
            data = path.read_bytes()
            with zipfile.ZipFile(path) as z:
                graphs = {n: z.read(n) for n in z.namelist() if n.endswith(".onnx")}
        report(1, 1, "done")
        return BuiltBundle(data, graphs, figures)

    return Task("export", work, slots, on_cancel=ws.con.interrupt if ws is not None else None).start()
