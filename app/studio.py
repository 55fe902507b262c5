"""Wide & Deep Studio: page setup and navigation only."""

import streamlit as st

st.set_page_config(page_title="Wide & Deep Studio", layout="wide")
st.navigation([
    st.Page("views/data.py", title="Data", default=True),
    st.Page("views/features.py", title="Features"),
    st.Page("views/train.py", title="Train"),
    st.Page("views/inspect.py", title="Inspect"),
    st.Page("views/explain.py", title="Explain"),
    st.Page("views/export.py", title="Export"),
]).run()
