"""Export: the run as a zip, and an ONNX bundle whose graphs are checked before they can be downloaded."""

import streamlit as st
from live import task_view
from plain import plain
from state import pick_finished_run, session, slots

from studio_core.common.errors import StudioError
from studio_core.jobs.export_job import export_task
from studio_core.runs.inspect import run_zip
from studio_core.runs.lightgbm_run import LightGBMRun
from studio_core.runs.results import int8_change

s = session()
st.title("Export")
snap, run = pick_finished_run(s, "export_run", baselines=True)
gbm = isinstance(run, LightGBMRun)  # a LightGBM baseline: its trees as ONNX, a challenger to serve beside the model
c1, c2 = st.columns(2)
c1.download_button("Download run (zip)", lambda: run_zip(snap.result.run_dir), f"widedeep-run-{snap.id[:8]}.zip", "application/zip",
                   on_click="ignore", type="primary", key="dl_run")
c2.download_button("Download spec JSON", run.spec.to_json(), "spec.json", "application/json", on_click="ignore", key="dl_run_spec")

st.subheader("ONNX for serving without PyTorch")
data = run.spec.data
try:  # the run's rows must be readable here (a SQL-trained run needs the tables its query reads)
    has_data = bool(s.ws.source(data.table, data.sql).columns)
except StudioError:
    has_data = False
st.caption(("The bundle holds raw.onnx (raw column values -> the LightGBM trees' prediction), model.onnx (the trees alone), "
            "the label mapping, the spec and a model card. raw.onnx is checked against LightGBM " if gbm else
            "The bundle holds model.onnx (the network), raw.onnx (preprocessing + network: scores raw column values), "
            "the preprocessing state, the spec and a model card. Each graph is checked against the trained model ")
           + ("on its validation rows." if has_data else f"on 10,000 synthetic rows (load table `{data.table}` for validation-row figures)."))
task = s.exports.get(snap.id)
int8 = False if gbm else st.checkbox("Also quantise to INT8 (smaller; scores move slightly)", key="export_int8")
if st.button("Build and check the bundle", key="export_build", disabled=task is not None and task.snapshot().active):
    task = s.exports[snap.id] = export_task(run, s.ws.fork() if has_data else None, int8, slots=slots())


if task is None:
    st.stop()
task_view(s, task, lambda t: (0.5, "Exporting and checking against onnxruntime…"), "The export", "export")
built = task.snapshot().result
if built is None:
    st.stop()
p, q = built.figures["parity"], built.figures["int8"]
measured = ((f"Parity on {p['rows_source']}: raw.onnx vs LightGBM, largest difference {p['raw_prediction_max_abs_diff']:.2g}, "
             f"{p['rows_over_1e-5']:,} rows over 1e-5") if "model_max_abs_diff" not in p else
            (f"Parity on {p['rows_source']}: model.onnx vs PyTorch, largest difference {p['model_max_abs_diff']:.2g}"
             + (f"; raw.onnx vs the engine {p['raw_prediction_max_abs_diff']:.2g} (prediction), {p['raw_id_mismatches']} differing ids"
                if "raw.onnx" in built.graphs else ""))) + f". Tolerance: {p['tolerance']}; the worst row used {p['tolerance_used']:.2g} of it."
if p["ok"]:
    st.success(measured)
else:
    st.error("**The parity check failed**: the ONNX graphs do not reproduce the trained model, so scores served from this "
             "bundle would differ from the studio's. " + measured + " The model card says so too.")
    if not st.checkbox("Offer the bundle anyway (for inspection)", key="export_anyway"):
        st.stop()
if "raw_unavailable" in p:
    st.warning(f"No raw-row graph: {plain(p['raw_unavailable'])}. Scoring applies preprocess.json in Python, then model.onnx.")
if q:
    change = int8_change(q) if q.get("validation_rows") else q.get("note", "")
    st.info(f"INT8 ({q['chosen']}): {q['size_ratio']:.2f}× the size; {change}; largest score change "
            f"{q.get('max_score_change', q.get('max_score_change_synthetic', 0)):.3g}.")
precision = st.radio("ONNX graph", ["float32", "INT8"] if q else ["float32"], horizontal=True, key="export_precision")
raw = "raw.int8.onnx" if precision == "INT8" else "raw.onnx"
net = "model.int8.onnx" if precision == "INT8" else "model.onnx"
c1, c2, c3 = st.columns(3)
c1.download_button("Download bundle (zip)", built.zip_bytes, f"widedeep-bundle-{snap.id[:8]}.zip", "application/zip",
                   on_click="ignore", type="primary", key="dl_bundle")
if raw in built.graphs:
    c2.download_button(f"Download {raw}", built.graphs[raw], raw, "application/octet-stream", on_click="ignore", key="dl_raw")
c3.download_button(f"Download {net}", built.graphs[net], net, "application/octet-stream", on_click="ignore", key="dl_net")
st.caption("Score new files with the bundle, no PyTorch needed: `wdstudio score --bundle bundle.zip --data new.csv --out preds.csv`")
