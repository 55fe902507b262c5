"""How much of the machine other processes used while a benchmark ran (Linux, /proc/stat).

Timings on a small shared machine are only meaningful when nothing else runs: PyTorch and
scikit-learn with two threads slow down many-fold when one of the two cores is busy elsewhere.
``Contention.report()`` gives the share of all CPU capacity used by processes other than this
one and its waited-for children between ``Contention()`` and the call.
"""

from __future__ import annotations

import os
import time

HZ = os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system + irq + softirq + steal
    return busy / HZ, (busy + idle + iowait) / HZ


def _own() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Contention:
    def __init__(self) -> None:
        self.busy0, self.total0 = _machine()
        self.own0, self.wall0 = _own(), time.perf_counter()

    def report(self) -> str:
        busy, total = _machine()
        own = _own() - self.own0
        others = max(0.0, (busy - self.busy0) - own)
        share = others / max(total - self.total0, 1e-9)
        wall = time.perf_counter() - self.wall0
        return (f"CPU used by other processes during this run: {share:.0%} of the machine's {os.cpu_count()} CPUs "
                f"over {wall:.0f} s (this process and its children: {own:.0f} CPU s)"
                + ("  <-- contended: timings are not representative" if share > 0.10 else ""))
