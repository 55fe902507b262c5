"""Wide & Deep Studio: page setup, navigation, and the four steps with where the user is."""

import streamlit as st
from state import session

st.set_page_config(page_title="Wide & Deep Studio", layout="wide")
s = session()
with st.sidebar:
    st.markdown("### Wide & Deep Studio")
    steps = st.empty()


def draw_steps() -> None:
    """Drawn before the page and again after it (a page that stopped early keeps the first), so
    a step the user just finished is ticked in the same run."""
    done = {"Data": bool(s.ws.tables()), "Features": s.spec is not None, "Train": bool(s.job_ids)}
    steps.caption("  \n".join(f"{'✓' if done.get(step) else '○'} {n}. {step}" for n, step in
                               enumerate(["Data", "Features", "Train", "Inspect · Compare · Explain · Export · Predict"], start=1)))


draw_steps()
try:
    st.navigation([
        st.Page("views/data.py", title="Data", default=True),
        st.Page("views/features.py", title="Features"),
        st.Page("views/train.py", title="Train"),
        st.Page("views/inspect.py", title="Inspect"),
        st.Page("views/compare.py", title="Compare"),
        st.Page("views/explain.py", title="Explain"),
        st.Page("views/export.py", title="Export"),
        st.Page("views/predict.py", title="Predict"),
    ]).run()
finally:
    draw_steps()
