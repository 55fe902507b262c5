"""Data: load files or the sample, look at tables and column profiles, query with SQL."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st
from state import SAMPLE_DIR, session

from studio_core.charts import column_chart
from studio_core.errors import StudioError
from studio_core.sqlutil import qi
from studio_core.workspace import table_name_for

s = session()
st.title("Data")

left, right = st.columns([2, 1])
with left:
    files = st.file_uploader("Upload CSV or Parquet files", type=["csv", "tsv", "txt", "parquet"], accept_multiple_files=True, key="uploads")
    if files and st.button("Load uploaded files", key="load_uploads", type="primary"):
        with tempfile.TemporaryDirectory(prefix="wd-upload-", dir=s.spool) as spool:
            for f in files:
                path = Path(spool) / (table_name_for(f.name) + Path(f.name).suffix.lower())
                with path.open("wb") as out:
                    shutil.copyfileobj(f, out)  # spooled to disk once; DuckDB reads the file
                try:
                    res = s.ws.load(path)
                    st.success(f"Loaded {f.name} as table `{res.table}`: {res.rows:,} rows, {res.columns} columns")
                    for w in res.warnings:
                        st.warning(w)
                except StudioError as exc:
                    st.error(str(exc))
with right:
    sample = st.selectbox("Or a bundled sample", ["adult.csv", "clicklog.csv"], key="sample_name")
    if st.button("Load sample", key="load_sample"):
        res = s.ws.load(SAMPLE_DIR / sample)
        st.success(f"Loaded `{res.table}`: {res.rows:,} rows")

tables = s.ws.tables()
if not tables:
    st.info("No tables yet: upload a file or load a sample.")
    st.stop()

def rows_of(name: str) -> int | None:
    """A table's row count, or None when counting it takes longer than the query timeout."""
    try:
        return s.ws.table(name).n_rows()
    except StudioError:
        return None


st.subheader("Tables")
listed = [{"table": t, "rows": rows_of(t), "columns": len(s.ws.table(t).columns)} for t in tables]
st.dataframe(listed, hide_index=True)
slow = [t["table"] for t in listed if t["rows"] is None]
if slow:
    st.warning(f"Counting the rows of {', '.join(slow)} took longer than the query timeout and was stopped; "
               "a view that is this slow will be slow to train on too.")
table = st.selectbox("Table", tables, index=tables.index(s.table) if s.table in tables else 0, key="data_table")
s.table = table
st.caption("First 50 rows")
try:
    st.dataframe(s.ws.run_sql(f"SELECT * FROM {qi(table)}", limit=50), hide_index=True)
except StudioError as exc:
    st.error(str(exc))

profile = []
if st.toggle("Column profile", key="show_profile"):  # computed only when shown: SQL over every column
    try:
        profile = s.ws.profile(table)
    except StudioError as exc:
        st.error(str(exc))
    for col in profile:
        c1, c2 = st.columns([1, 2])
        c1.markdown(f"**{col.name}** · `{col.type}`  \nmissing {col.null_share:.1%} · {col.distinct:,} distinct")
        if col.numeric:
            c1.caption(f"min {col.min:g} · mean {col.mean:g} · max {col.max:g}" if col.mean is not None else "all missing")
            values = s.ws.run_sql(f"SELECT {qi(col.name)} FROM {qi(table)} USING SAMPLE 5000 ROWS")
            c2.altair_chart(column_chart(values, col.name, True), width="stretch")
        elif col.top_values:
            import pandas as pd

            c2.altair_chart(column_chart(pd.DataFrame(col.top_values, columns=["value", "rows"]), col.name, False), width="stretch")

st.subheader("SQL")
sql = st.text_area("Query your tables (joins across uploads work)", value=f'SELECT * FROM "{table}" LIMIT 100', key="sql_text")
name = st.text_input("Save the result as table (optional)", key="sql_save_as")
if st.button("Run query", key="run_sql"):
    try:
        result = s.ws.run_sql(sql, save_as=table_name_for(name) if name.strip() else None, limit=1000)
        if hasattr(result, "ref"):  # saved: a table, or a view from CREATE ... AS (counted under the query timeout)
            st.success(f"Saved as `{result.name}` ({s.ws.guarded(result.n_rows):,} rows)")
        else:
            st.dataframe(result, hide_index=True)
    except StudioError as exc:
        st.error(str(exc))
