"""The Explain page for a LightGBM baseline: exact TreeSHAP per column on the run's validation
rows, drawn with the same importance and beeswarm charts as a network run's SHAP values, so an
analyst sees whether the challenger leans on the same columns.  The views that need the network
(partial dependence through the model, one row's wide/deep split, what-if) say why they are absent."""

from typing import Any

import streamlit as st
from live import task_view
from state import StudioSession, slots

from studio_core.jobs.explain_job import explain_task
from studio_core.runs import charts


def shap_overview(result: Any) -> Any:
    """Where the SHAP values of any run (network or LightGBM) are drawn: the importance bars and
    the beeswarm side by side; returns the importance frame (largest first)."""
    importance = result.importance()
    c1, c2 = st.columns(2)
    c1.altair_chart(charts.importance_chart(importance, result.output_name), width="stretch")
    c2.altair_chart(charts.beeswarm_chart(result.long_frame(), list(importance.feature), result.output_name), width="stretch")
    return importance


def lightgbm_explain_view(s: StudioSession, snap, run) -> None:
    classes = run.preprocessor.classes_ if run.preprocessor.task == "multiclass" else []
    class_k = classes.index(st.selectbox("Explain the score of class", classes, key="explain_class")) if classes else 0
    job_key = f"{snap.id}/{class_k}" if classes else snap.id
    job = s.explain_jobs.get(job_key)
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    n_rows = c1.number_input("Validation rows to explain", 10, 20000, 1000, step=100, key="explain_rows_gbm",
                             help="LightGBM computes exact SHAP values from its trees (TreeSHAP): thousands of rows take a second")
    if c2.button("Explain", type="primary", key="explain_start", disabled=job is not None and job.snapshot().active):
        job = s.explain_jobs[job_key] = explain_task(run, s.ws.fork(), int(n_rows), slots=slots(), class_index=class_k)
    if job is None:
        st.info("SHAP values say how much each column moved each score away from the average. Press Explain to compute them "
                "(exact, from the trees).")
        return
    task_view(s, job, lambda e: (0.5, "Explaining rows with TreeSHAP…"), "The explanation", "explain")
    done = job.snapshot().result
    if done is None:
        return
    result = done.explanation
    st.caption(f"{len(result.values)} validation rows explained exactly (LightGBM's TreeSHAP) in {result.seconds:.1f} s; "
               f"units: {result.output_name}; average output {result.base_value:+.3f}.")
    shap_overview(result)
    st.info("Partial dependence, one row's wide/deep split and what-if edits are drawn for network runs; compare this baseline's "
            "columns with the model's on its own Explain view, or in the report.")
