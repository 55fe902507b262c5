"""One rank of the divergence test (started as a plain process by tests/test_scale.py, not by
torchrun, so no agent stops the other rank when one fails).

Rank 1's model starts giving NaN outputs at its third training step -- as a rank whose shard
holds an extreme row would -- and each rank writes how its training ended, so the test can
check that both ranks stop at the same step with the same error instead of one waiting on the
other in a collective."""

from __future__ import annotations

import sys
from pathlib import Path

from studio_core.common.errors import TrainingDiverged
from studio_core.data.workspace import Workspace
from studio_core.model.network import WideDeep
from studio_core.runs.train import train
from studio_core.spec.schema import Spec
from studio_core.training.distributed import ranks_from_env, stop


def main() -> None:
    data, spec_path, out = sys.argv[1:4]
    ranks = ranks_from_env()
    assert ranks is not None and ranks.world == 2
    ws = Workspace(threads=1)
    ws.load(data, "t")
    spec = Spec.from_json(Path(spec_path).read_text(encoding="utf-8"))
    if ranks.rank == 1:
        real, calls = WideDeep.forward, [0]

        def forward(self, *inputs):
            calls[0] += 1
            out = real(self, *inputs)
            return out * float("nan") if calls[0] >= 3 else out

        WideDeep.forward = forward
    try:
        train(spec, ws, None, ranks=ranks)
        ended = "finished"
    except TrainingDiverged as exc:
        ended = f"TrainingDiverged: {exc}"
    except Exception as exc:  # noqa: BLE001 - the test reports whatever else ended the rank
        ended = f"{type(exc).__name__}: {str(exc)[:300]}"
    Path(out, f"rank{ranks.rank}.txt").write_text(ended, encoding="utf-8")
    stop()


if __name__ == "__main__":
    main()
