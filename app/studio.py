"""Wide & Deep Studio: page setup and navigation only."""

import streamlit as st

st.set_page_config(page_title="Wide & Deep Studio", page_icon="🧭", layout="wide")
st.navigation([
    st.Page("pages/data.py", title="Data", icon="🗂️", default=True),
    st.Page("pages/features.py", title="Features", icon="🧩"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/inspect.py", title="Inspect", icon="🔎"),
    st.Page("pages/export.py", title="Export", icon="📦"),
]).run()
