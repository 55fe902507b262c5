"""One rank of the distributed test (started by torchrun from tests/test_scale.py).

Trains with the engine's own ``pipeline.train`` on this rank's shard, with the preprocessing
the test fitted and shipped (or, given "-", fitted by rank 0 and broadcast), then saves its final parameters (NumPy .npz, no pickle) and the
row numbers of its training shard, so the test can compare ranks with each other and with one
process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from studio_core.data.workspace import Workspace
from studio_core.runs.train import prepare, train
from studio_core.spec.schema import Spec
from studio_core.training.distributed import ranks_from_env, stop


def main() -> None:
    data, spec_path, prep_path, out = sys.argv[1:5]
    ranks = ranks_from_env()
    assert ranks is not None and ranks.world == 2
    ws = Workspace(threads=1)
    ws.load(data, "t")
    spec = Spec.from_json(Path(spec_path).read_text(encoding="utf-8"))
    shipped = json.loads(Path(prep_path).read_text(encoding="utf-8")) if prep_path != "-" else None  # "-": rank 0 fits
    outcome = train(spec, ws, None, ranks=ranks, preprocessing=shipped)
    np.savez(Path(out, f"rank{ranks.rank}.npz"), **{k: v.numpy() for k, v in outcome.model.state_dict().items()})
    split, _ = prepare(spec, ws, ranks.world)
    shard = split.shard("train", ranks.rank, ranks.world)
    rows = [r[0] for r in ws.con.sql(f"SELECT id FROM {shard.relation}").fetchall()]  # the test's files have an id column
    Path(out, f"rank{ranks.rank}.json").write_text(json.dumps({"rows": rows, "metrics": outcome.metrics, "preprocessing": outcome.preprocessor.state()}))
    stop()


if __name__ == "__main__":
    main()
