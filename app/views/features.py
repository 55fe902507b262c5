"""Features: pick the label, review suggested roles and crosses, see the model, save the spec."""

import pandas as pd
import streamlit as st
from plain import plain
from state import session

from studio_core.common.errors import StudioError
from studio_core.data.sqlutil import qi, text_expr
from studio_core.features.editing import NUMERIC_ENCODINGS, ROLES, add_cross, apply_rows, diagram_dot, feature_rows, summarize
from studio_core.features.suggest import suggest
from studio_core.features.validate import validate
from studio_core.spec.schema import TEXT_KINDS, DataSpec, Spec

ENCODING_HELP = ("Text: text (a bag of words and word pairs) or multi (a set of values such as Action|Comedy). "
                 "Categorical: vocab (an id per value) or hash. Numeric: standardize (one scaled value); piecewise (piecewise-linear "
                 "encoding over quantile bins); piecewise-tree (its bins where the label changes: a shallow tree on the training rows); periodic (learned sin/cos embeddings of the scaled value); quantile (its rank, "
                 "robust to skew and outliers); bucketize (only its quantile bucket, embedded)")
s = session()
st.title("Features")
tables = s.ws.tables()
if not tables:
    st.info("Load data on the Data page first.")
    st.stop()

c1, c2 = st.columns(2)
table = c1.selectbox("Table", tables, index=tables.index(s.table) if s.table in tables else 0, key="feat_table")
columns = s.ws.table(table).columns
current_label = s.spec.data.label if s.spec and s.spec.data.label in columns else columns[-1]
label = c2.selectbox("Label (what to predict)", columns, index=columns.index(current_label), key="feat_label")
if st.button("Suggest features", type="primary", key="suggest"):
    try:
        with st.spinner("Profiling columns and ranking crosses…"):
            s.suggestion = suggest(s.ws, DataSpec(table=table, label=label))
        s.spec, s.table = s.suggestion.spec, table
    except StudioError as exc:
        st.error(plain(str(exc)))

uploaded = st.file_uploader("…or upload a spec JSON", type=["json"], key="spec_upload")
if uploaded is not None and st.button("Use uploaded spec", key="use_spec"):
    try:
        spec = Spec.from_json(uploaded.getvalue())
        problems = validate(spec, s.ws.source(spec.data.table, spec.data.sql))
        if problems:
            st.error("The uploaded spec has problems:\n\n" + "\n".join(f"- {plain(p)}" for p in problems))
        else:
            s.spec, s.suggestion = spec, None
    except StudioError as exc:
        st.error(plain(str(exc)))

if s.spec is None:
    st.info("Choose the label and press **Suggest features**.")
    st.stop()

spec = s.spec
reason = s.suggestion.task_reason.split("; positive class")[0] if s.suggestion else "from the spec"
st.caption(f"Task: **{spec.data.task}** · {plain(reason)}")
if s.suggestion and s.suggestion.notes:
    st.warning("Before you train:\n\n" + "\n".join(f"- {plain(n)}" for n in s.suggestion.notes))
offers = [("group", g, f"Use the grouped split by {g}",
           f"Every {g} value goes to one part (train, validation or test), so the test figures are on new groups; "
           f"{g} itself is then used by the split, not as a feature. The features are suggested again.")
          for g in (s.suggestion.group_columns if s.suggestion and spec.data.split != "group" else [])]
offers += [("time", t, f"Use the time-ordered split by {t}",
            f"Rows are ordered by {t}: training is the earliest rows, validation the next, test the latest, so the test "
            "figures are on a future the model has not seen. The features are suggested again.")
           for t in (s.suggestion.time_columns[:1] if s.suggestion and spec.data.split != "time" else [])]
for kind, col, text, why in offers:
    if st.button(text, key=f"{kind}_split_{col}", help=why):
        try:
            with st.spinner(f"Suggesting again with the {'grouped' if kind == 'group' else 'time-ordered'} split…"):
                s.suggestion = suggest(s.ws, DataSpec(**{**spec.data.__dict__, "split": kind, "split_column": col}))
            s.spec = spec = s.suggestion.spec
            st.rerun()
        except StudioError as exc:
            st.error(plain(str(exc)))
if spec.data.split != "random":
    st.caption(f"Split: **{spec.data.split}**" + (f" by {plain(spec.data.split_column)}" if spec.data.split_column else "")
               + " (change it on the Train page).")
try:  # the spec's rows: a table, or its data.sql
    src = s.ws.source(spec.data.table, spec.data.sql)
except StudioError as exc:
    st.error(f"The spec's rows cannot be read: {plain(exc)}")
    st.stop()
if spec.data.task == "binary":
    label_sql = text_expr(spec.data.label, src.types[spec.data.label])
    try:
        values = s.ws.run_sql(f"SELECT DISTINCT {label_sql} AS v FROM {src.ref} WHERE {qi(spec.data.label)} IS NOT NULL ORDER BY 1 LIMIT 20")["v"].tolist()
    except StudioError as exc:
        st.error(plain(str(exc)))
        values = []
    if spec.data.positive_class in values:
        spec.data.positive_class = st.selectbox("Positive class", values, index=values.index(spec.data.positive_class), key="positive")
        st.caption(f"Scores will be the probability that {plain(spec.data.label)} is {plain(spec.data.positive_class)}.")

if s.suggestion:
    reasons = {r.name: r.reason for r in s.suggestion.roles}
else:  # an uploaded spec: say where each role came from rather than leave the column blank
    used = set(spec.feature_names())
    reasons = {c: ("the label" if c == spec.data.label else "set in the uploaded spec" if c in used else "not used by the spec")
               for c in src.columns}
rows = pd.DataFrame(feature_rows(spec, src.columns, reasons))
edited = st.data_editor(rows, hide_index=True, key="columns_editor", disabled=["column", "reason"], column_config={
    "role": st.column_config.SelectboxColumn(options=list(ROLES), required=True),
    "encoding": st.column_config.SelectboxColumn(options=["vocab", "hash", *NUMERIC_ENCODINGS, *TEXT_KINDS], help=ENCODING_HELP),
    "embedding_dim": st.column_config.NumberColumn(min_value=0, max_value=256, step=1),
    "wide": st.column_config.CheckboxColumn("also in wide")})
spec = s.spec = apply_rows(spec, edited.to_dict("records"))

st.subheader("Wide crosses")
if s.suggestion and s.suggestion.crosses:
    cand = pd.DataFrame([{"cross": " x ".join(c.columns), "gain (nats/row)": round(c.score, 5), "cardinality": c.cardinality,
                          "unseen share": round(c.unseen_share, 4)} for c in s.suggestion.crosses])
    st.dataframe(cand, hide_index=True)
    pick = st.selectbox("Suggested cross", cand["cross"], key="cross_pick")
    if st.button("Add suggested cross", key="add_suggested"):
        spec = s.spec = add_cross(spec, pick.split(" x "))
custom = st.multiselect("Custom cross (2-3 feature columns)", spec.feature_names(), max_selections=3, key="custom_cross")
if st.button("Add custom cross", key="add_custom"):
    if len(custom) < 2:
        st.error("Pick 2 or 3 columns for a cross.")
    else:
        spec = s.spec = add_cross(spec, custom)
if spec.features.crosses and st.button("Remove all crosses", key="clear_crosses"):
    spec.features.crosses = []  # before the list below is drawn, so it shows at once
st.write("In the spec: " + (plain(", ".join(" x ".join(x.columns) for x in spec.features.crosses)) or "no crosses"))

problems = validate(spec, src)
for p in problems:
    st.error(plain(p))

st.subheader("Model")
distinct = {r.name: r.distinct for r in s.suggestion.roles} if s.suggestion else {}
summary = summarize(spec, distinct)
st.graphviz_chart(diagram_dot(summary))
st.caption(f"≈ {summary.wide_params:,} wide weights · ≈ {summary.deep_params:,} deep parameters")
st.download_button("Download spec JSON", spec.to_json(), "spec.json", "application/json", on_click="ignore", key="dl_spec")
