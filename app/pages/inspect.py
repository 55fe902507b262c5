"""Inspect: metrics, curves and the wide weights of a finished run."""

import streamlit as st
from state import pick_finished_run, session

from studio_core import charts
from studio_core.errors import StudioError
from studio_core.inspect import calibration_frame, confusion, holdout, pr_frame, roc_frame, wide_weights

s = session()
st.title("Inspect")
snap, run = pick_finished_run(s, "inspect_run")
m = run.metrics
keys = ["auc", "logloss", "accuracy"] if m["task"] == "binary" else ["rmse", "mae", "r2"]
for col, k in zip(st.columns(len(keys) + 2), keys + ["best_epoch", "train_rows_per_s"]):
    col.metric(k.replace("_", " "), f"{m[k]:.4f}" if isinstance(m[k], float) and k != "train_rows_per_s" else f"{m[k]:,.0f}")

try:
    h = holdout(run, s.ws)
except StudioError as exc:
    st.error(str(exc))
    st.stop()
if h.task == "binary":
    c1, c2, c3 = st.columns(3)
    c1.altair_chart(charts.roc_chart(roc_frame(h), m["auc"]), width="stretch")
    c2.altair_chart(charts.pr_chart(pr_frame(h)), width="stretch")
    c3.altair_chart(charts.calibration_chart(calibration_frame(h)), width="stretch")
    threshold = st.slider("Threshold", 0.0, 1.0, 0.5, 0.01, key="threshold")
    cm = confusion(h, threshold)
    st.table({"predicted positive": [cm["tp"], cm["fp"]], "predicted negative": [cm["fn"], cm["tn"]]} | {"": ["actual positive", "actual negative"]})
else:
    c1, c2 = st.columns(2)
    c1.altair_chart(charts.scatter_chart(h.y, h.pred), width="stretch")
    c2.altair_chart(charts.residual_chart(h.y, h.pred), width="stretch")

st.subheader("Wide weights")
weights = wide_weights(run)
if weights.empty:
    st.info("This run has no wide part.")
else:
    st.altair_chart(charts.weights_chart(weights), width="stretch")
    query = st.text_input("Search feature values", key="weight_search")
    shown = weights[weights.feature.str.contains(query, case=False, regex=False) | weights.value.str.contains(query, case=False, regex=False)] if query else weights
    st.dataframe(shown.head(500), hide_index=True)

st.page_link("pages/explain.py", label="Explain these scores: SHAP per column, wide vs deep per row, what-if")
