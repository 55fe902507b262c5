"""Export: download a finished run as a zip, and its spec."""

import streamlit as st
from state import pick_finished_run, session

from studio_core.inspect import run_zip

s = session()
st.title("Export")
snap, run = pick_finished_run(s, "export_run")
st.download_button("Download run (zip)", lambda: run_zip(snap.run_dir), f"widedeep-run-{snap.id[:8]}.zip", "application/zip",
                   on_click="ignore", type="primary", key="dl_run")
st.download_button("Download spec JSON", run.spec.to_json(), "spec.json", "application/json", on_click="ignore", key="dl_run_spec")
st.divider()
st.caption("ONNX, INT8 and a scoring bundle come next: they will appear here, each checked against the trained model before download.")
