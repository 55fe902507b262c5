"""Compare: this session's finished runs on the test rows they share -- each run's test metric with
its 95 % interval, its paired difference from a reference run, P(better) -- and a run's ablations."""

import streamlit as st
from live import task_view
from plain import plain
from state import registry, session

from studio_core.common.errors import StudioError
from studio_core.common.metrics import METRIC_KEYS, headline, metric_label
from studio_core.compare.ablations import ablation_specs
from studio_core.compare.charts import (
    difference_chart,
    has_differences,
    leaderboard_table,
    left_out,
    metric_chart,
    slice_chart,
    slice_frame,
)
from studio_core.compare.leaderboard import leaderboard
from studio_core.compare.slices import slice_columns, slices_for
from studio_core.report.build import build_report
from studio_core.runs.folder import run_record

s = session()
st.title("Compare")
snaps = [j.snapshot() for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None]
done = {d.id: d for d in snaps if d.status == "done"}
if not done:
    st.info("Runs still training appear here when they finish." if s.job_ids else "Train a model on the Train page first.")
    st.stop()
names = {i: f"run {s.job_ids.index(i) + 1}" for i in done}
st.caption("Runs are compared on the test rows they share, each scored once after training. A paired interval comes from scoring "
           "both runs on the same 1,000 bootstrap resamples of those rows; P(better) is the share of resamples on which a run beats "
           "the reference.")
# runs that finished since the page last drew (an ablation, say) join the selection; runs the user took out stay out
fresh = [i for i in done if i not in s.compared]
if fresh and "compare_runs" in st.session_state:
    st.session_state["compare_runs"] = [i for i in st.session_state["compare_runs"] if i in done] + fresh
s.compared = list(done)
c1, c2, c3 = st.columns([3, 1, 1])
picked = c1.multiselect("Runs", list(done), default=list(done), format_func=names.get, key="compare_runs")
if not picked:
    st.info("Pick the runs to compare.")
    st.stop()
reference = c2.selectbox("Reference", picked, format_func=names.get, key="compare_reference")
task = (done[reference].result.metrics or {}).get("task", "binary")
metric = c3.selectbox("Metric", METRIC_KEYS[task], index=METRIC_KEYS[task].index(headline(task)), format_func=metric_label, key="compare_metric")
order = [reference] + [i for i in picked if i != reference]
report_key = f"{reference}|{'|'.join(order)}|{metric}"
try:
    board = leaderboard([done[i].result.run_dir for i in order], metric, names=[names[i] for i in order])
except StudioError as exc:  # e.g. runs scored on other test rows: said, and the page stays usable
    st.error(plain(str(exc)))
    board = None
if board is not None:
    label = metric_label(board.metric)
    st.dataframe(leaderboard_table(board), hide_index=True, width="stretch",
                 column_config={f"test {label}": st.column_config.NumberColumn(format="%.4f")})
    left, right = st.columns(2)
    left.altair_chart(metric_chart(board), width="stretch")
    if has_differences(board):
        right.altair_chart(difference_chart(board), width="stretch")
    if left_out(board):
        st.caption(f"{', '.join(left_out(board))} (the constant baseline) is in the table but not in the charts: far below every "
                   "model, it would squeeze their intervals into one point.")

    columns = slice_columns(run_record(done[reference].result.run_dir)[0])
    column = st.selectbox("Slice by", ["(no slices)", *columns], key="compare_slice",
                          help="Every run's test metric per value of a column (quantile bands for a number), with paired intervals: "
                               "does the ranking hold on every segment?")
    if column != "(no slices)":
        slice_key = f"{report_key}|{column}"
        try:
            if s.slices is None or s.slices[0] != slice_key:
                with st.spinner(f"Scoring every run per {column}…"):
                    s.slices = (slice_key, slices_for([done[i].result.run_dir for i in order], s.ws, column, metric, [names[i] for i in order]))
            sliced = s.slices[1]
            flipped = [x.value for x in sliced.slices if x.flips]
            significant = [x.value for x in sliced.slices if x.significant]
            if significant:
                st.warning(f"The ranking flips on {', '.join(significant)}: there a paired interval excludes zero on the other side from overall.")
            elif flipped:
                st.info(f"The order of runs differs on {', '.join(flipped)} (⚠ in the chart), but no paired interval there says it is more than chance.")
            else:
                st.caption("The order of runs is the same on every slice with figures.")
            st.altair_chart(slice_chart(sliced), width="stretch")
            st.dataframe(slice_frame(sliced), hide_index=True, width="stretch",
                         column_config={sliced.metric: st.column_config.NumberColumn(format="%.4f"),
                                        "low": st.column_config.NumberColumn(format="%.4f"), "high": st.column_config.NumberColumn(format="%.4f")})
        except StudioError as exc:  # the table was dropped or changed since the run: said, and the page goes on
            st.error(plain(str(exc)))

st.subheader("Add baselines and ablations")
base = st.selectbox("For run", list(done), index=len(done) - 1, format_func=names.get, key="ablation_run",
                    help="Each is trained on exactly this run's training, validation and test rows, so it joins the leaderboard when it finishes")
b1, b2, b3 = st.columns(3)
wanted = {"lightgbm": b1.button("LightGBM baseline", key="add_lightgbm", help="Gradient-boosted trees with their defaults, early-stopped on the same validation rows"),
          "constant": b2.button("Constant baseline", key="add_constant", help="Predicts the training rows' share (or mean) for every row: the floor"),
          "ablations": b3.button("Wide-only and deep-only", key="train_ablations",
                                 help="The same spec with only its wide part (the linear baseline on the same wide ids) and with only its deep part")}
for what in [k for k, pressed in wanted.items() if pressed]:
    try:
        if what != "ablations":
            s.job_ids.append(registry().submit_baseline(s.owner, what, base, s.ws))
            st.success(f"{'LightGBM' if what == 'lightgbm' else 'constant'} baseline of {names[base]} queued as run {len(s.job_ids)}; "
                       "it appears here when it finishes.")
            continue
        variants = ablation_specs(run_record(done[base].result.run_dir)[0])
        if not variants:
            st.info(f"{names[base]} does not have both a wide and a deep part: nothing to ablate.")
        for kind, spec in variants.items():
            s.job_ids.append(registry().submit(s.owner, spec, s.ws))
            st.success(f"{kind} variant of {names[base]} queued as run {len(s.job_ids)}; it appears here when it finishes.")
    except StudioError as exc:  # the job queue's limit, a run folder that cannot be read, a table no longer loaded
        st.error(plain(str(exc)))

for job in [j for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None and j.snapshot().active]:
    n = s.job_ids.index(job.id) + 1  # live until it ends; then the page reruns and the run joins the leaderboard
    task_view(s, job, lambda t, n=n: (t.done / t.total if t.total else 0.0, f"run {n}: {t.message or 'training'}"), f"run {n}",
              key=f"compare_live_{job.id[:8]}")

st.subheader("Report")
st.caption("One HTML file for stakeholders: data and split, this leaderboard with intervals, curves, wide weights, SHAP importance "
           "(when the reference run was explained on the Explain page), the model card. It opens offline in any browser.")
if st.button("Build report", key="build_report", disabled=board is None):
    explained = s.explain_jobs.get(reference)
    shap = None
    if explained is not None and explained.snapshot().status == "done":
        e = explained.snapshot().result.explanation
        shap = (e.importance(), e.output_name, len(e.values))
    try:
        with st.spinner("Drawing the report's charts…"):
            html = build_report(done[reference].result.run_dir, [done[i].result.run_dir for i in order[1:]], shap=shap,
                                metric=metric, names=[names[i] for i in order])
        s.report = (report_key, html.encode("utf-8"))
    except StudioError as exc:
        st.error(plain(str(exc)))
if s.report is not None and s.report[0] == report_key:
    st.download_button("Download report (HTML)", s.report[1], f"widedeep-report-{names[reference].replace(' ', '-')}.html", "text/html",
                       on_click="ignore", type="primary", key="dl_report")
