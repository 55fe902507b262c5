"""Export: download a finished run as a zip, and its spec."""

import streamlit as st
from state import registry, session

from studio_core.inspect import run_zip
from studio_core.runs import load_run

s = session()
st.title("Export")
done = [d for d in (j.snapshot() for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None) if d.status == "done"]
if not done:
    st.info("Runs still training appear here when they finish." if s.job_ids else "Train a model on the Train page first.")
    st.stop()
names = {d.id: f"run {n + 1}" for n, d in enumerate(done)}
pick = st.selectbox("Run", list(names), index=len(names) - 1, format_func=names.get, key="export_run")
snap = next(d for d in done if d.id == pick)
st.download_button("Download run (zip)", lambda: run_zip(snap.run_dir), f"widedeep-{names[pick].replace(' ', '')}.zip", "application/zip",
                   on_click="ignore", type="primary", key="dl_run")
st.download_button("Download spec JSON", load_run(snap.run_dir).spec.to_json(), "spec.json", "application/json", on_click="ignore", key="dl_run_spec")
st.divider()
st.caption("ONNX, INT8 and a scoring bundle come next: they will appear here, each checked against the trained model before download.")
