"""Train: the training knobs, a background run with live charts, cancel, and the list of runs."""

import copy

import streamlit as st
from live import task_view
from plain import plain
from state import registry, session
from tuning import tuning_panel

from studio_core.common.errors import StudioError
from studio_core.common.metrics import auto_monitor
from studio_core.compare.ablations import ablation_specs
from studio_core.features.suggest_checks import positive_weight_for
from studio_core.features.validate import validate
from studio_core.jobs.hub import hub
from studio_core.jobs.tasks import TaskSnapshot
from studio_core.jobs.training import run_metrics
from studio_core.runs.charts import loss_chart, metric_chart, step_chart
from studio_core.runs.results import result_summary, run_label
from studio_core.runs.train import resolve_device
from studio_core.spec.schema import CLASS_WEIGHTS, DEEP_OPTIMIZERS, DEVICES, OUT_OF_CORE, SPLITS, WIDE_OPTIMIZERS

s = session()
st.title("Train")


def session_jobs() -> list:
    """This session's training jobs (finished, running or queued)."""
    return [j for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None and getattr(j, "spec", None) is not None]


def training_form() -> None:
    """The knobs and Start; needs a spec and its table (runs below are listed without either)."""
    if s.spec is None:
        st.info("Set up features on the Features page first." + (" Your earlier runs are listed below." if s.job_ids else ""))
        return
    spec = copy.deepcopy(s.spec)
    t, m, d = spec.train, spec.model, spec.data
    try:
        columns = s.ws.source(d.table, d.sql).columns
    except StudioError as exc:
        st.error(plain(str(exc)) + " Load it on the Data page to train again; your runs are listed below.")
        return
    with st.form("train_form"):
        st.markdown("**Rows** · training fits the model, validation makes every decision (best epoch, learning rate), "
                    "test is scored once at the end and gives the reported figures")
        r1, r2, r3, r4 = st.columns(4)
        split_help = {"random": "random (stratified by the label)", "time": "time-ordered: latest rows are validation, then test",
                      "group": "grouped: each value of a column on one side", "column": "a column says train / validation / test"}
        d.split = r1.selectbox("Split", SPLITS, SPLITS.index(d.split), format_func=split_help.get, key="split_kind")
        choices = [""] + [c for c in columns if c != d.label]
        d.split_column = r2.selectbox("Split column", choices, choices.index(d.split_column) if d.split_column in choices else 0, key="split_column",
                                      help="time: the column that orders the rows; group: the column whose values stay together; column: train/validation/test")
        d.validation_fraction = r3.number_input("Validation share", 0.01, 0.9, float(d.validation_fraction), 0.05, key="validation_fraction")
        d.test_fraction = r4.number_input("Test share", 0.0, 0.9, float(d.test_fraction), 0.05, key="test_fraction")
        c1, c2, c3, c4 = st.columns(4)
        t.epochs = c1.number_input("Epochs (at most)", 1, 1000, t.epochs, key="epochs", help="Training stops earlier when the validation figure has not improved for the early-stopping patience (Advanced)")
        t.batch_size = c2.number_input("Batch size", 0, 1 << 20, t.batch_size, key="batch_size",
                                       help="Rows per training step. 0 = automatic: 512 on a CPU; on a GPU a 16th of the training rows (512 to 8,192)")
        t.deep_lr = c3.number_input("Deep learning rate", 1e-6, 10.0, t.deep_lr, format="%.5f", key="deep_lr")
        if d.task == "binary":
            share = s.suggestion.positive_share if s.suggestion and s.suggestion.positive_share is not None else None
            t.positive_weight = c4.number_input(
                "Positive weight", 0.001, 1e6, float(t.positive_weight), format="%g", key="positive_weight",
                help="A positive row's weight in the loss. 1 keeps the scores calibrated probabilities; for rare positives, "
                     "negatives per positive gives both classes equal weight" + (f" (here {positive_weight_for(share):g}: positives are "
                                                                                  f"{share:.2%} of the training rows)." if share else "."))
        elif d.task == "multiclass":
            t.class_weight = c4.selectbox("Class weights", CLASS_WEIGHTS, CLASS_WEIGHTS.index(t.class_weight), key="class_weight",
                                          help="balanced: each class counts in the loss as if all classes had as many rows (rare classes "
                                               "get recalled more, probabilities are then no longer calibrated); none: every row counts once")
        c1, c2, c3 = st.columns(3)
        m.wide = c1.checkbox("Wide part", m.wide, key="use_wide")
        m.deep = c2.checkbox("Deep part", m.deep, key="use_deep")
        m.attention = c3.checkbox("Self-attention over fields", m.attention, key="attention")
        first = not any(j.spec.data.table == d.table and j.spec.data.sql == d.sql for j in session_jobs())
        with_ablations = st.checkbox("Also train the wide-only and deep-only variants on the same split (ablations)",
                                     first and hub().limits.first_run_ablations,
                                     key="with_ablations" if first else "with_ablations_more",  # a new widget once the table has runs
                                     help="Does each part earn its place? The Compare page ranks the three with paired intervals. "
                                          "On by default for the first run of a table; each variant is a training of its own")
        with st.expander("Advanced"):
            a1, a2, a3 = st.columns(3)
            hidden = a1.text_input("Hidden units", ", ".join(map(str, m.hidden_units)), key="hidden")
            m.dropout = a2.number_input("Dropout", 0.0, 0.95, m.dropout, key="dropout")
            m.wide_l1 = a3.number_input("Wide L1", 0.0, 10.0, m.wide_l1, format="%.4f", key="wide_l1")
            t.wide_lr = a1.number_input("Wide learning rate", 1e-6, 10.0, t.wide_lr, format="%.4f", key="wide_lr")
            t.deep_optimizer = a2.selectbox("Deep optimiser", DEEP_OPTIMIZERS, DEEP_OPTIMIZERS.index(t.deep_optimizer), key="deep_opt")
            t.wide_optimizer = a3.selectbox("Wide optimiser", WIDE_OPTIMIZERS, WIDE_OPTIMIZERS.index(t.wide_optimizer), key="wide_opt")
            t.warmup_steps = a1.number_input("Warm-up steps", 0, 100000, t.warmup_steps, key="warmup")
            t.grad_clip = a2.number_input("Gradient clip (0 = off)", 0.0, 1000.0, t.grad_clip, key="clip")
            t.early_stopping_patience = a3.number_input("Early-stopping patience", 0, 100, t.early_stopping_patience, key="patience")
            t.max_minutes = a1.number_input("Time budget (minutes, 0 = none)", 0.0, 10080.0, float(t.max_minutes), key="max_minutes",
                                            help="Training ends when this much time has passed: the epoch under way is the last, and "
                                                 "the best epoch so far is the model kept")
            t.seed = a2.number_input("Seed", 0, 2**31 - 1, t.seed, key="seed")
            t.device = a3.selectbox("Device", DEVICES, DEVICES.index(t.device), key="device")
            t.out_of_core = a1.selectbox("Out of core", OUT_OF_CORE, OUT_OF_CORE.index(t.out_of_core), key="out_of_core",
                                         help="Stream encoded rows from disk instead of holding them in memory; auto: above the row threshold")
            t.out_of_core_rows = a2.number_input("Out of core above (rows)", 0, 10**12, t.out_of_core_rows, key="out_of_core_rows")
            spec.features.max_vocabulary = a3.number_input("Largest vocabulary", 1, 1 << 24, spec.features.max_vocabulary, key="max_vocabulary",
                                                           help="A vocabulary column with more values is hashed into this many buckets")
            m.ensemble = a1.number_input("Ensemble members (1 = none)", 1, 64, m.ensemble, key="ensemble",
                                         help="k members in one MLP (BatchEnsemble): each scales the inputs its own way and has its own "
                                              "output; the prediction is their mean. Training the MLP costs about k times as long")
        start = st.form_submit_button("Start training", type="primary")

    if start:
        try:
            m.hidden_units = [int(x) for x in hidden.replace(" ", "").split(",") if x]
        except ValueError:
            st.error("Hidden units: write whole numbers separated by commas, e.g. 256, 128")
            return
        problems = validate(spec, s.ws.source(spec.data.table, spec.data.sql))
        if problems:
            st.error("Fix these before training:\n\n" + "\n".join(f"- {plain(p)}" for p in problems))
        else:
            s.spec = spec
            try:
                job_id = registry().submit(s.owner, spec, s.ws)
                s.job_ids.append(job_id)
                s.selected_job = st.session_state["run_pick"] = job_id  # the widget's own state would keep the old run selected
            except StudioError as exc:  # e.g. this session's share of the job queue is full
                st.error(plain(str(exc)))
                return
            if with_ablations and m.wide and m.deep:
                queued = []
                try:
                    for kind, variant in ablation_specs(spec).items():
                        s.job_ids.append(registry().submit(s.owner, variant, s.ws))
                        queued.append(f"{kind} as run {len(s.job_ids)}")
                except StudioError as exc:  # the session's job limit: the run itself is queued; the rest can wait
                    st.warning(f"{plain(str(exc))} — add the missing variants from the Compare page when a run finishes.")
                if queued:
                    st.success(f"Queued the {' and '.join(queued)}, on the same split; the Compare page ranks them when they finish.")


training_form()
tuning_panel(s)
jobs = [j for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None]
if not jobs:
    st.stop()
# an option's label must not change while it is selected (the browser remembers the label, and a
# label that changed from "running" to its AUC matches no option): status and figures go in captions
ids = [j.id for j in jobs]
if st.session_state.get("run_pick") not in ids:
    st.session_state["run_pick"] = s.selected_job if s.selected_job in ids else ids[-1]
s.selected_job = st.radio("Runs", ids, format_func=lambda i: f"run {ids.index(i) + 1}", horizontal=True, key="run_pick",
                          captions=[run_label(n + 1, j.snapshot().status, run_metrics(j.snapshot()), interval=True).split(" · ", 1)[1]
                                    for n, j in enumerate(jobs)])
job = registry().get(s.selected_job, s.owner)


def training_progress(snap: TaskSnapshot) -> tuple[float, str]:
    device = job.spec.train.device
    where = (resolve_device(device) if device == "auto" else device).upper()
    return (snap.done / snap.total if snap.total else 0.0), f"{where} · {snap.message}" if snap.total else f"{where} · preparing data…"


def training_body(snap: TaskSnapshot) -> None:
    """The run's outcome and its curves, live while it trains."""
    metrics = run_metrics(snap)
    if snap.status == "done":
        st.success(result_summary(metrics))
        for note in metrics.get("notes", []):
            st.info(note)
    curves = snap.progress
    if curves is None:
        return
    c1, c2 = st.columns(2)
    if curves.epochs:
        c1.altair_chart(loss_chart(curves.epochs), width="stretch")
        # what early stopping watches (a run read back from disk has no spec object)
        metric = metrics.get("monitor") or auto_monitor(metrics.get("task") or job.spec.data.task)
        c2.altair_chart(metric_chart(curves.epochs, metric if metric in curves.epochs[0].val else "loss"), width="stretch")
    if curves.steps:
        st.altair_chart(step_chart(curves.steps), width="stretch")


task_view(s, job, training_progress, "Training", "train", training_body, slot="training slot")
