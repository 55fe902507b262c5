"""Inspect: test and validation figures, curves on the held-out rows, and the wide weights of a finished run."""

import pandas as pd
import streamlit as st
from state import pick_finished_run, session

from studio_core.common.errors import StudioError
from studio_core.common.metrics import METRIC_KEYS, UNDEFINED, format_metric, metric_label
from studio_core.runs import charts
from studio_core.runs.inspect import (
    at_threshold,
    base_rate,
    calibration_frame,
    class_confusion,
    confusion,
    effect_columns,
    effect_curve,
    holdout,
    pr_frame,
    roc_frame,
    threshold_for_share,
    two_classes,
    wide_weights,
)
from studio_core.runs.lightgbm_run import LightGBMRun
from studio_core.runs.results import interval_text

s = session()
st.title("Inspect")
snap, run = pick_finished_run(s, "inspect_run", baselines=True)
baseline = isinstance(run, LightGBMRun)  # a LightGBM baseline: its figures and stored test rows, no network to re-score with
m = run.metrics
keys = [k for k in METRIC_KEYS[m["task"]] if k in m]  # a run from before a metric was added does not show it
test, ci = m.get("test") or {}, m.get("test_ci") or {}
if test:
    st.caption(f"Test: {m.get('n_test', 0):,} rows scored once, after training; nothing was decided on them. The interval is a 95 % bootstrap interval.")
    for col, k in zip(st.columns(len(keys)), keys):
        col.metric(f"test {metric_label(k)}", format_metric(k, test.get(k)))
        if interval_text(ci.get(k)):
            col.caption(f"95% interval {interval_text(ci.get(k))}")
else:
    st.info("This run has no test rows: the figures below are validation figures, which also chose the best epoch.")
c = st.columns(len(keys) + 2)
for col, k in zip(c, keys):
    col.metric(f"validation {metric_label(k)}", format_metric(k, m.get(k)))
c[-2].metric("best epoch", f"{m.get('best_epoch', '?')} of {m.get('epochs_run', '?')}")
c[-1].metric("rows per second", f"{float(m.get('train_rows_per_s') or 0):,.0f}")

parts = (["test"] if test else []) + ([] if baseline else ["validation"])
part = st.radio("Curves on", parts, horizontal=True, key="inspect_part",
                format_func={"test": "test rows (stored at training)", "validation": "validation rows (re-scored from the loaded data)"}.get)
try:
    h = holdout(run, s.ws, part)
except StudioError as exc:
    st.error(str(exc))
    h = None
if h is not None and h.task == "binary":
    c1, c2, c3 = st.columns(3)
    if two_classes(h):
        auc = float(test.get("auc")) if part == "test" and test.get("auc") is not None else m.get("auc")
        c1.altair_chart(charts.roc_chart(roc_frame(h), auc), width="stretch")
        c2.altair_chart(charts.pr_chart(pr_frame(h)), width="stretch")
    else:
        c1.info(f"ROC and precision-recall: {UNDEFINED['auc']}: the {part} rows hold only one class.")
    c3.altair_chart(charts.calibration_chart(calibration_frame(h)), width="stretch")
    rate = base_rate(h)
    st.markdown(f"**At a threshold** · base rate: {rate:.2%} of these {len(h.y):,} rows are positive"
                + (" (rare positives: accuracy says little; read precision and recall)" if rate < 0.1 else ""))
    t1, t2 = st.columns([1, 3])
    by = t1.radio("Set the threshold by", ["share of rows flagged", "score"], index=0 if rate < 0.1 else 1, key="threshold_by")
    if by == "score":
        threshold = t2.slider("Threshold (flag rows scored at or above it)", 0.0, 1.0, 0.5, 0.001, format="%.3f", key="threshold")
    else:
        share = t2.slider("Share of rows flagged (%)", 0.1, 50.0, float(min(50.0, max(0.1, round(100 * rate, 1)))), 0.1, format="%.1f",
                          key="flag_share", help="The rows with the highest scores; the threshold is the score of the last one flagged")
        threshold = threshold_for_share(h, share / 100)
    at = at_threshold(h, threshold)
    q = st.columns(5)
    q[0].metric("threshold", f"{threshold:.4f}")
    q[1].metric("rows flagged", f"{at['flagged']:,} ({at['flagged_share']:.1%})")
    for col, k in zip(q[2:], ("precision", "recall", "f1")):
        col.metric(k if k != "f1" else "F1", "not defined" if at[k] != at[k] else f"{at[k]:.3f}")
    cm = confusion(h, threshold)
    st.table(pd.DataFrame({"predicted positive": [cm["tp"], cm["fp"]], "predicted negative": [cm["fn"], cm["tn"]]},
                          index=["actual positive", "actual negative"]))
elif h is not None and h.task == "multiclass":
    matrix, per_class = class_confusion(run, h)
    c1, c2 = st.columns([3, 2])
    c1.altair_chart(charts.confusion_chart(matrix), width="stretch")
    c2.caption(f"Each class on these {len(h.y):,} {part} rows: precision (of the rows predicted as it) and recall (of its rows)")
    c2.dataframe(per_class.style.format({"precision": "{:.3f}", "recall": "{:.3f}"}, na_rep="not defined"), hide_index=True)
elif h is not None:
    c1, c2 = st.columns(2)
    c1.altair_chart(charts.scatter_chart(h.y, h.prediction), width="stretch")
    c2.altair_chart(charts.residual_chart(h.y, h.prediction), width="stretch")

if baseline:
    st.info("A LightGBM baseline has no wide weights, and its validation rows are not re-scored here: its test figures and curves "
            "above come from the test rows it scored once, after training. Its SHAP values are on the Explain page.")
    st.stop()
st.subheader("Wide weights")
classes = run.preprocessor.classes_ if run.preprocessor.task == "multiclass" else []
class_k = classes.index(st.selectbox("Weights towards class", classes, key="weights_class")) if classes else 0
weights = wide_weights(run, class_k)
if weights.empty:
    st.info("This run has no wide part.")
else:
    st.altair_chart(charts.weights_chart(weights), width="stretch")
    query = st.text_input("Search feature values", key="weight_search")
    shown = weights[weights.feature.str.contains(query, case=False, regex=False) | weights.value.str.contains(query, case=False, regex=False)] if query else weights
    st.dataframe(shown.head(500), hide_index=True)
    numeric_wide = effect_columns(run)
    if numeric_wide:
        col = st.selectbox("Effect curve of a numeric column (its buckets' wide weights)", numeric_wide, key="effect_column")
        curve = effect_curve(run, col, class_k)
        st.altair_chart(charts.effect_chart(curve, col), width="stretch")
        missing = curve[curve.bucket == 0].weight.iloc[0]
        st.caption(f"A missing {col} adds {missing:+.4f} to the logit." if missing else f"Missing {col} values add nothing in the wide part.")

st.page_link("views/explain.py", label="Explain these scores: SHAP per column, wide vs deep per row, what-if")
