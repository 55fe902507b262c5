"""Wide & Deep Studio: page setup and navigation only."""

import streamlit as st

st.set_page_config(page_title="Wide & Deep Studio", layout="wide")
st.navigation([
    st.Page("pages/data.py", title="Data", default=True),
    st.Page("pages/features.py", title="Features"),
    st.Page("pages/train.py", title="Train"),
    st.Page("pages/inspect.py", title="Inspect"),
    st.Page("pages/explain.py", title="Explain"),
    st.Page("pages/export.py", title="Export"),
]).run()
