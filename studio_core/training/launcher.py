"""Run N training ranks with torchrun on this machine, without importing torch here: the spec
and the fitted preprocessing travel to every rank as JSON files, the ranks' progress lines are
passed through, and the first real ``error: ...`` a rank prints is returned as the cause.

An interruption of the launcher (Ctrl-C, SIGTERM) stops the ranks with SIGTERM and waits for
their cleanup before it goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

LAUNCHED_ENV = "WDSTUDIO_LAUNCHED"  # set for the ranks: the launcher has said the spec and warnings once already
PASSED_ON = ("epoch ", "warning: ", "note: ", "\repoch ")


def launch(spec_json: str, preprocessing_json: str, data_items: list[str], nproc: int, out: str, quiet: bool = False,
           write: Callable[[str], object] = sys.stderr.write) -> tuple[int, str]:
    """(torchrun's exit status, the failing rank's error message or "").  The rank that failed
    first says why; the others then report lost connections (internal errors), so those count
    only when nothing else was said."""
    with tempfile.TemporaryDirectory(prefix="wdstudio-launch-") as tmp:  # the ranks' temporary files live here too
        spec_path, prep_path = Path(tmp, "spec.json"), Path(tmp, "preprocess.json")
        spec_path.write_text(spec_json, encoding="utf-8")
        prep_path.write_text(preprocessing_json, encoding="utf-8")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
                   "-m", "studio_core", "train", "--spec", str(spec_path), "--preprocessing", str(prep_path), "--out", out]
        for item in data_items:
            command += ["--data", item]
        if quiet:
            command.append("--quiet")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc)))),
               "TMPDIR": tmp, LAUNCHED_ENV: "1"}
        errors: list[str] = []
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as proc:
            try:
                for line in proc.stderr or []:
                    if line.startswith("error: "):
                        errors.append(line[7:].split("error: ")[0].strip())
                    elif line.startswith(PASSED_ON):
                        write(line)
            except BaseException:  # Ctrl-C, SIGTERM or SIGHUP here: stop the ranks, wait for their cleanup, then ours
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
    cause = next((e for e in errors if not e.startswith("internal error")), errors[0] if errors else "")
    return proc.returncode, cause
