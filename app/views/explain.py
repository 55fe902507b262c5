"""Explain: SHAP per column (a background job), then one row's wide/deep split and what-if edits."""

import pandas as pd
import streamlit as st
from explain_trees import lightgbm_explain_view, shap_overview
from live import task_view
from state import pick_finished_run, session, slots

from studio_core.common.errors import StudioError
from studio_core.explain.dependence import dependence, partial_dependence
from studio_core.explain.shap_values import estimate_seconds
from studio_core.explain.whatif import categories, explain_row, input_hint, is_numeric, is_text, row_matches, training_range, typical_row
from studio_core.jobs.explain_job import explain_task
from studio_core.runs import charts
from studio_core.runs.lightgbm_run import LightGBMRun

s = session()
st.title("Explain")
snap, run = pick_finished_run(s, "explain_run", baselines=True)
if isinstance(run, LightGBMRun):  # a LightGBM baseline: exact TreeSHAP, the same charts
    lightgbm_explain_view(s, snap, run)
    st.stop()
classes = run.preprocessor.classes_ if run.preprocessor.task == "multiclass" else []
class_k = classes.index(st.selectbox("Explain the score of class", classes, key="explain_class",
                               help="SHAP values per class: how each column moved this class's logit")) if classes else 0
job_key = f"{snap.id}/{class_k}" if classes else snap.id  # a multiclass run keeps one explanation per class
job = s.explain_jobs.get(job_key)
c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
n_rows = c1.number_input("Validation rows to explain", 10, 2000, 200, step=10, key="explain_rows")
n_bg = c2.number_input("Background rows", 10, 500, 100, step=10, key="explain_background")
if c3.button("Explain", type="primary", key="explain_start", disabled=job is not None and job.snapshot().active):
    job = s.explain_jobs[job_key] = explain_task(run, s.ws.fork(), n_rows, n_bg, slots=slots(), class_index=class_k)


@st.cache_data(max_entries=64, show_spinner=False)
def estimate(run_id: str, rows: int, background: int, _run) -> float | None:
    return estimate_seconds(_run, rows, background)


took = estimate(snap.id, int(n_rows), int(n_bg), run)
if took is not None:
    st.caption(f"{'About ' + format(took, '.0f') + ' s' if took >= 1 else 'Under a second'} for {n_rows} rows against {n_bg} background rows on this server now "
               f"({len(run.preprocessor.input_columns())} columns); the time grows with both numbers.")


if job is None:
    st.info("SHAP values say how much each original column moved each score away from the average. Press Explain to compute them.")
    st.stop()
task_view(s, job, lambda e: (e.done / max(e.total, 1), f"Explaining rows: {e.done}/{e.total}{e.eta_text()}"), "The explanation", "explain")
done = job.snapshot().result
if done is None:
    st.stop()
result, background = done.explanation, done.background
st.caption(f"{len(result.values)} rows explained against {background.n} background rows in {result.seconds:.1f} s; "
           f"units: {result.output_name}; average output {result.base_value:+.3f}.")
importance = shap_overview(result)

st.subheader("One column: partial dependence and ICE")
varied = [c for c in importance.feature if not is_text(run, c)]  # free text has no grid of values to set
dep_col = st.selectbox("Column to vary (most important first; free text is varied in the what-if box below)", varied, key="dependence_column")


@st.cache_data(max_entries=32, show_spinner=False)
def curves_for(explanation_id: str, column: str, _run, _data, k: int):
    """Computed once per explanation and column, not on every what-if edit."""
    return dependence(_run, _data, column, class_index=k)


try:
    if dep_col is None:
        raise StudioError("every column of this run is free text: vary it in the what-if box below")
    curves = curves_for(job.id, dep_col, run, result.data, class_k)
    score_name = f"probability of {classes[class_k]}" if classes else "probability" if run.preprocessor.task == "binary" else run.preprocessor.label
    st.altair_chart(charts.dependence_chart(curves, partial_dependence(curves), dep_col, is_numeric(run, dep_col), score_name), width="stretch")
    st.caption(f"Each of the {len(result.values)} explained rows scored with {dep_col} set to each of {curves.value.nunique()} values, "
               "every other column as it is.")
except StudioError as exc:
    st.error(str(exc))

st.subheader("One row: its score, wide vs deep, and what if")
find = st.text_input("Find rows (any column contains)", key="explain_find", placeholder="e.g. Bachelors, or a row number")
matches = row_matches(result.data, ["__wd_row", *result.columns], find)
if not matches:
    st.warning(f"No explained row has a value containing {find!r}; showing all rows.")
    matches = list(range(len(result.values)))
labels = {i: f"row {result.data['__wd_row'].iloc[i] if '__wd_row' in result.data else i} · output {result.outputs[i]:+.3f} · "
             + ", ".join(f"{c}={result.data[c].iloc[i]}" for c in list(importance.feature)[:4]) for i in matches}
typical = typical_row(result.outputs)
options = [typical] + [i for i in matches if i != typical] if typical in matches else matches
if st.session_state.get("explain_row") not in options:  # a new search: its first match, not a stale pick
    st.session_state.pop("explain_row", None)
pick = st.selectbox("Row (the first is the one nearest the median output)", options, format_func=labels.get, key="explain_row")
row = {}
order = list(importance.feature)  # the inputs that move scores most come first
shown, rest = order[:12], order[12:]


def what_if_input(col: str, box) -> None:
    value, key = result.data[col].iloc[pick], f"whatif_{snap.id}_{pick}_{col}"
    missing = pd.isna(value)  # None, NaN or NA: shown empty, and empty means missing
    span = training_range(run, col) if is_numeric(run, col) else None
    helptext = f"training range {span[0]:g} to {span[1]:g}" if span else None
    if is_numeric(run, col) and (missing or abs(float(value)) < 2**53):  # the number widget's range
        row[col] = box.number_input(col, value=None if missing else float(value), key=key, format="%g", help=helptext)
    elif is_numeric(run, col):
        row[col] = box.text_input(col, f"{float(value):g}", key=key, help=helptext)
    elif is_text(run, col):
        row[col] = box.text_area(col, "" if missing else str(value), key=key, height=100)
    elif (options := categories(run, col)) is not None:
        current = "" if missing else str(value)
        options = [current] + [o for o in options if o != current] if current else [""] + options
        row[col] = box.selectbox(col, options, key=key, accept_new_options=True)
    else:
        row[col] = box.text_input(col, "" if missing else str(value), key=key)
    if (hint := input_hint(run, col, row[col])) is not None:
        box.caption(f":orange[⚠ {hint}]")


grid = st.columns(4)
for k, col in enumerate(shown):
    what_if_input(col, grid[k % 4])
if rest:
    with st.expander(f"{len(rest)} more inputs (less important)"):
        grid = st.columns(4)
        for k, col in enumerate(rest):
            what_if_input(col, grid[k % 4])
try:
    one, parts = explain_row(run, row, background, class_index=class_k)
except StudioError as exc:
    st.error(str(exc))
    st.stop()
score = f"{parts.prediction:.3f}" if run.preprocessor.task != "regression" else f"{parts.prediction:,.4g}"
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"probability of {classes[class_k]}" if classes else "probability" if run.preprocessor.task == "binary" else "prediction", score, f"{float(one.outputs[0]) - result.outputs[pick]:+.3f} {one.output_name} vs the row")
m2.metric("wide", f"{parts.wide:+.3f}")
m3.metric("deep", f"{parts.deep:+.3f}")
m4.metric("bias", f"{parts.bias:+.3f}")
c1, c2 = st.columns(2)
c1.altair_chart(charts.waterfall_chart(one.waterfall_frame(0), one.base_value, float(one.outputs[0]), one.output_name), width="stretch")
with c2:
    st.altair_chart(charts.split_chart(parts.wide, parts.deep, parts.bias), width="stretch")
    if len(parts.wide_terms):
        st.caption("Wide part: one weight per active value or cross")
        st.dataframe(parts.wide_terms, hide_index=True, height=260)
    if parts.tokens is not None and len(parts.tokens):
        st.caption("Tokens that moved this row: each word's wide weight, strongest first")
        st.dataframe(parts.tokens.head(30), hide_index=True, height=240)
