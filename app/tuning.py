"""The Train page's tuning panel: a search within a budget as a background task, its trials
drawn live, and the best spec offered for a real training (whose test figures are then scored once)."""

import streamlit as st
from live import task_view
from plain import plain
from state import StudioSession, slots

from studio_core.common.errors import StudioError
from studio_core.common.metrics import MAXIMISE, headline
from studio_core.features.validate import validate
from studio_core.jobs.tune_job import tune_task
from studio_core.runs.charts import trials_chart


def tuning_panel(s: StudioSession) -> None:
    if s.spec is None:
        return
    with st.expander("Tune: search learning rates, widths, dropout, encodings… on the validation rows", expanded=s.tune is not None):
        c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
        trials = c1.number_input("Trials", 1, 500, 12, key="tune_trials", help="Trial 1 is the spec as it is; each trial trains one model")
        minutes = c2.number_input("Minutes (at most)", 0.5, 600.0, 10.0, 0.5, key="tune_minutes")
        busy = s.tune is not None and s.tune.task.snapshot().active
        if c3.button("Start tuning", key="tune_start", disabled=busy):
            try:
                problems = validate(s.spec, s.ws.source(s.spec.data.table, s.spec.data.sql))
                if problems:
                    st.error("Fix these before tuning:\n\n" + "\n".join(f"- {plain(p)}" for p in problems))
                else:
                    s.tune = tune_task(s.spec, s.ws.fork(), int(trials), float(minutes), slots=slots())
            except StudioError as exc:
                st.error(plain(str(exc)))
        if s.tune is None:
            st.caption("No trial scores the test rows: they stay unseen until the best spec is trained.")
            return
        job = s.tune
        task_view(s, job.task, lambda t: (t.done / max(t.total, 1), f"Tuning: {t.done}/{t.total} trials{t.eta_text()}"), "Tuning", "tune")
        done = [(t.number, t.value) for t in job.log.trials if t.value is not None]
        result = job.task.snapshot().result
        monitor = result.monitor if result else headline(job.spec.data.task)
        if done:
            st.altair_chart(trials_chart(done, monitor, monitor in MAXIMISE), width="stretch")
        if result is None:
            return
        given = f"{result.default_value:.4f}" if result.default_value is not None else "failed"
        st.success(f"Best validation {monitor} {result.best_value:.4f} (the spec as it was: {given}) after {len(result.trials)} trials.")
        st.dataframe(result.table(), hide_index=True)
        if st.button("Use the best spec", key="tune_use", type="primary"):
            s.spec = result.best_spec
            st.info("The best spec is in place: press Start training above for its test figures.")
