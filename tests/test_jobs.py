import time

from studio_core.jobs.training import JobRegistry
from studio_core.runs.store import load_run


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
    assert len(snap.progress.epochs) == spec.train.epochs and snap.progress.steps and snap.result.metrics["auc"] > 0.8
    assert load_run(snap.result.run_dir).metrics["auc"] == snap.result.metrics["auc"]
    assert "synthetic" in ws.tables()  # the user's workspace still works after the job


def test_cancel_and_failure_are_reported_not_raised(small_spec, tmp_path):
    ws, spec = small_spec
    reg = JobRegistry(tmp_path)
    spec.train.epochs = 1000
    spec.train.early_stopping_patience = 0
    job = reg.get(reg.submit("a", spec, ws), "a")
    while job.snapshot().progress is None or not job.snapshot().progress.steps:
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
    assert snap.status == "done" and snap.result.metrics == load_run(done.result.run_dir).metrics
    assert [p.val["auc"] for p in snap.progress.epochs] == [p.val["auc"] for p in done.progress.epochs]
    assert restarted.get(job_id, "intruder") is None


KILLED_SERVER = """
import sys, time
from studio_core.jobs.training import JobRegistry
from studio_core.spec.schema import DataSpec
from studio_core.features.suggest import suggest
from studio_core.data.workspace import Workspace
ws = Workspace()
ws.load(sys.argv[1])
spec = suggest(ws, DataSpec(table="synthetic", label="target")).spec
spec.train.epochs, spec.model.hidden_units = 1, [8]
reg = JobRegistry(sys.argv[2])
first = reg.get(reg.submit("owner", spec, ws), "owner")
while first.snapshot().active:
    time.sleep(0.05)
spec.train.epochs, spec.train.early_stopping_patience = 10000, 0
second = reg.get(reg.submit("owner", spec, ws), "owner")
while (second.snapshot().progress is None or not second.snapshot().progress.steps) and second.snapshot().active:
    time.sleep(0.02)
print(first.id, second.id, second.snapshot().status, flush=True)
time.sleep(600)
"""


def test_a_server_killed_mid_training_keeps_earlier_runs_and_marks_the_interrupted_one(synthetic_csv, tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", KILLED_SERVER, str(synthetic_csv), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        first_id, second_id, status = proc.stdout.readline().split()
        assert status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    restarted = JobRegistry(tmp_path)
    assert restarted.restore("owner") == [first_id, second_id]
    first, second = (restarted.get(i, "owner").snapshot() for i in (first_id, second_id))
    assert first.status == "done" and load_run(first.result.run_dir).metrics["auc"] > 0.5
    assert second.status == "interrupted" and "start it again" in second.error and not second.active


def test_jobs_wait_for_a_free_slot_in_order_and_can_leave_the_queue(small_spec, tmp_path):
    from studio_core.jobs.tasks import Slots

    ws, spec = small_spec
    spec.train.epochs, spec.train.early_stopping_patience = 1000, 0
    reg = JobRegistry(tmp_path, Slots(1))
    running = reg.get(reg.submit("a", spec, ws), "a")
    spec2 = spec.__class__.from_dict(spec.to_dict())
    spec2.train.epochs = 1
    waiting = reg.get(reg.submit("b", spec2, ws), "b")
    leaving = reg.get(reg.submit("c", spec2, ws), "c")
    time.sleep(0.5)
    assert running.snapshot().status == "running"
    assert (waiting.snapshot().status, waiting.snapshot().queue_position) == ("queued", 1)
    assert leaving.snapshot().queue_position == 2
    leaving.cancel()
    leaving.join(5)
    assert leaving.snapshot().status == "cancelled" and leaving.snapshot().progress is None
    running.cancel()
    assert wait(waiting).status == "done" and reg.slots.load() == (0, 0)
    assert JobRegistry(tmp_path).restore("c") == [leaving.id]  # its marker says cancelled
    assert JobRegistry(tmp_path).get(leaving.id, "c") is None
