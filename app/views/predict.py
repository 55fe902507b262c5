"""Predict: score a new table with a finished run or an exported bundle; preview and download."""

import tempfile
from pathlib import Path

import streamlit as st
from live import task_view
from plain import plain
from state import pick_finished_run, session, slots
from uploads import load_uploads

from studio_core.common.errors import StudioError
from studio_core.export.scoring import load_bundle
from studio_core.jobs.predict_job import predict_task

s = session()
st.title("Predict")
snap, run = pick_finished_run(s, "predict_run", baselines=True)  # a LightGBM baseline scores new rows too
st.caption("New rows are scored with the run's own preprocessing and model. Columns are matched by name: a feature column the "
           "rows lack counts as missing, and renamed or mostly missing columns are refused unless you allow them below.")

files = st.file_uploader("Upload a file to score (CSV or Parquet; it becomes a table of this session)", type=["csv", "tsv", "txt", "parquet"],
                         accept_multiple_files=True, key=f"predict_uploads_{s.uploads}")
if files and st.button("Load file", key="predict_load"):
    loaded = load_uploads(s, files)
    if loaded:
        st.session_state["predict_table"] = loaded[-1]
tables = s.ws.tables()
if not tables:
    st.info("Upload a file above (or load one on the Data page) to score it.")
    st.stop()
if st.session_state.get("predict_table") not in tables:
    st.session_state.pop("predict_table", None)
c1, c2 = st.columns([2, 1])
table = c1.selectbox("Table to score", tables, index=len(tables) - 1, key="predict_table")
with_what = c2.radio("Score with", ["this run", "an exported bundle (.zip)"], key="predict_with", horizontal=True)
bundle_file = st.file_uploader("Bundle zip from the Export page", type=["zip"], key="predict_bundle") if with_what != "this run" else None
allow = st.checkbox("Score even if feature columns are missing or look renamed (they count as missing values)", key="predict_allow_missing")

key = snap.id if with_what == "this run" else "bundle"
job = s.predicts.get(key)
busy = job is not None and job.snapshot().active
if st.button("Score", type="primary", key="predict_start", disabled=busy or (with_what != "this run" and bundle_file is None)):
    try:
        scorer = run
        if bundle_file is not None:
            with tempfile.TemporaryDirectory(prefix="wd-bundle-", dir=s.spool) as tmp:
                path = Path(tmp) / "bundle.zip"
                path.write_bytes(bundle_file.getvalue())
                scorer = load_bundle(path)  # read whole: the folder can go
        job = s.predicts[key] = predict_task(scorer, s.ws.fork(), table, scorer.preprocessor.task, allow, slots=slots())
    except StudioError as exc:
        st.error(plain(str(exc)))

if job is None:
    st.stop()
task_view(s, job, lambda t: (0.5, f"Scoring the rows of {table}…"), "Scoring", "predict")
done = job.snapshot().result
if done is None:
    st.stop()
for w in done.warnings:
    st.warning(plain(w))
st.success(f"Scored {done.rows:,} rows." + ("" if with_what == "this run" else " (with the uploaded bundle)"))
shown = list(done.summary.items())[:8]  # a multiclass run: the first classes' shares
cols = st.columns(len(shown) or 1)
for col, (name, value) in zip(cols, shown):
    col.metric(f"prediction {name}" if "share" not in name else name, f"{value:.1%}" if "share" in name else f"{value:,.4g}")
st.dataframe(done.preview, hide_index=True)
st.caption(f"The first {len(done.preview)} of {done.rows:,} rows; the prediction is the first column"
           + (" (the probability of the positive class)." if run.preprocessor.task == "binary"
              else " (the most likely class), then each class's probability (p_<class>, summing to 1)." if run.preprocessor.task == "multiclass"
              else " (on the label's scale)."))
if done.csv is not None:
    st.download_button("Download all rows with predictions (CSV)", done.csv, f"{table}_predictions.csv", "text/csv", key="predict_download",
                       on_click="ignore")
else:
    st.info(plain(done.note))
