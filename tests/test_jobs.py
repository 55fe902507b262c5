import time

from studio_core.jobs import JobRegistry
from studio_core.runs import load_run


def wait(job, seconds=60):
    deadline = time.time() + seconds
    while job.snapshot().active and time.time() < deadline:
        time.sleep(0.05)
    return job.snapshot()


def test_job_trains_in_background_and_owner_is_checked(small_spec, tmp_path):
    ws, spec = small_spec
    reg = JobRegistry(tmp_path)
    job_id = reg.submit("alice", spec, ws)
    assert reg.get(job_id, "bob") is None and reg.owned("bob") == []
    job = reg.get(job_id, "alice")
    snap = wait(job)
    assert snap.status == "done", snap.error
    assert len(snap.epochs) == spec.train.epochs and snap.steps and snap.metrics["auc"] > 0.8
    assert load_run(snap.run_dir).metrics["auc"] == snap.metrics["auc"]
    assert "synthetic" in ws.tables()  # the user's workspace still works after the job


def test_cancel_and_failure_are_reported_not_raised(small_spec, tmp_path):
    ws, spec = small_spec
    reg = JobRegistry(tmp_path)
    spec.train.epochs = 1000
    spec.train.early_stopping_patience = 0
    job = reg.get(reg.submit("a", spec, ws), "a")
    while not job.snapshot().steps:
        time.sleep(0.02)
    t0 = time.time()
    job.cancel()
    job.join(5)
    assert job.snapshot().status == "cancelled" and time.time() - t0 < 1.0
    spec.train.epochs = 1
    spec.data.label = "nope"
    bad = reg.get(reg.submit("a", spec, ws), "a")
    snap = wait(bad)
    assert snap.status == "failed" and "nope" in snap.error


def test_finished_runs_are_read_back_after_a_restart(small_spec, tmp_path):
    ws, spec = small_spec
    first = JobRegistry(tmp_path)
    job_id = first.submit("owner1", spec, ws)
    done = wait(first.get(job_id, "owner1"))
    restarted = JobRegistry(tmp_path)  # a new process: nothing in memory
    assert restarted.restore("owner1") == [job_id] and restarted.restore("someone") == []
    snap = restarted.get(job_id, "owner1").snapshot()
    assert snap.status == "done" and snap.metrics == load_run(done.run_dir).metrics
    assert [p.val["auc"] for p in snap.epochs] == [p.val["auc"] for p in done.epochs]
    assert restarted.get(job_id, "intruder") is None
