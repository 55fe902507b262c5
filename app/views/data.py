"""Data: load files or the sample, look at tables and column profiles, query with SQL."""

import streamlit as st
from plain import plain
from state import SAMPLE_DIR, session
from uploads import load_uploads

from studio_core.common.errors import StudioError
from studio_core.data.datafiles import free_table_name, table_name_for
from studio_core.data.profile import profile as column_profiles
from studio_core.data.sqlutil import qi
from studio_core.runs.charts import column_chart

SHOWN_COLUMNS = 200  # a 50,000-column table stays fast to rerun: previews and profiles show this many

s = session()
st.title("Data")

left, right = st.columns([2, 1])
with left:
    files = st.file_uploader("Upload CSV or Parquet files", type=["csv", "tsv", "txt", "parquet"], accept_multiple_files=True,
                             key=f"uploads_{s.uploads}")
    if files and st.button("Load uploaded files", key="load_uploads", type="primary"):
        load_uploads(s, files)
with right:
    sample = st.selectbox("Or a bundled sample", ["adult.csv", "clicklog.csv"], key="sample_name")
    if st.button("Load sample", key="load_sample"):
        wanted = table_name_for(sample)
        res = s.ws.load(SAMPLE_DIR / sample, name=free_table_name(wanted, s.ws.tables()))
        st.success(f"Loaded {plain(res.table)}: {res.rows:,} rows" + (f" (a table {plain(wanted)} exists and is unchanged)" if res.table != wanted else ""))

tables = s.ws.tables()
if not tables:
    st.info("No tables yet: upload a file or load a sample.")
    st.markdown("**Wide & Deep Studio** turns a table into a trained, explained model you can download, in four steps: "
                "**1. Data** (load a CSV or Parquet file here) → **2. Features** (pick what to predict, take the suggested "
                "features) → **3. Train** → **4. Inspect, Explain, Export**. To see it work first, press **Load sample**.")
    st.stop()

def rows_of(name: str) -> int | None:
    """A table's row count, or None when counting it takes longer than the query timeout --
    remembered, so a slow view costs the timeout once, not on every rerun of the page."""
    if name in s.slow_tables:
        return None
    try:
        return s.ws.table(name).n_rows()
    except StudioError:
        s.slow_tables.add(name)
        return None


st.subheader("Tables")
listed = [{"table": t, "rows": rows_of(t), "columns": len(s.ws.table(t).columns)} for t in tables]
st.dataframe(listed, hide_index=True)
slow = [t["table"] for t in listed if t["rows"] is None]
if slow:
    st.warning(f"Counting the rows of {plain(', '.join(slow))} took longer than the query timeout and was stopped; "
               "a view that is this slow will be slow to train on too.")
table = st.selectbox("Table", tables, index=tables.index(s.table) if s.table in tables else 0, key="data_table")
s.table = table
columns = s.ws.table(table).columns
shown = columns[:SHOWN_COLUMNS]
st.caption("First 50 rows" + (f" of the first {SHOWN_COLUMNS} of {len(columns):,} columns" if len(columns) > SHOWN_COLUMNS else ""))
try:
    st.dataframe(s.ws.run_sql(f"SELECT {', '.join(qi(c) for c in shown)} FROM {qi(table)}", limit=50), hide_index=True)
except StudioError as exc:
    st.error(plain(str(exc)))

profile = []
if st.toggle("Column profile", key="show_profile"):  # computed only when shown: SQL over every column
    try:
        profile = column_profiles(s.ws, table, columns=shown)
        if len(columns) > SHOWN_COLUMNS:
            st.caption(f"Profiles of the first {SHOWN_COLUMNS} columns; query the others in the SQL box below.")
    except StudioError as exc:
        st.error(plain(str(exc)))
    for col in profile:
        c1, c2 = st.columns([1, 2])
        c1.markdown(f"**{plain(col.name)}** · {plain(col.type)}  \nmissing {col.null_share:.1%} · {col.distinct:,} distinct")
        if col.numeric:
            c1.caption(f"min {col.min:g} · mean {col.mean:g} · max {col.max:g}" if col.mean is not None else "all missing")
            values = s.ws.run_sql(f"SELECT {qi(col.name)} FROM {qi(table)} USING SAMPLE 5000 ROWS")
            c2.altair_chart(column_chart(values, col.name, True), width="stretch")
        elif col.top_values:
            import pandas as pd

            c2.altair_chart(column_chart(pd.DataFrame(col.top_values, columns=["value", "rows"]), col.name, False), width="stretch")

st.subheader("SQL")
sql = st.text_area("Query your tables (joins across uploads work)", value=f'SELECT * FROM "{table}" LIMIT 100', key="sql_text")
n1, n2 = st.columns([3, 1], vertical_alignment="bottom")
name = n1.text_input("Save the result as table (optional)", key="sql_save_as")
replace = n2.checkbox("Replace a table of that name", key="sql_replace")
if st.button("Run query", key="run_sql"):
    save_as = table_name_for(name) if name.strip() else None
    try:
        if save_as and not replace and save_as.lower() in {t.lower() for t in tables}:
            raise StudioError(f"a table named {save_as} exists; choose another name (e.g. {free_table_name(save_as, tables)}) "
                              "or tick \"Replace a table of that name\"")
        result = s.ws.run_sql(sql, save_as=save_as, limit=1000)
        if hasattr(result, "ref"):  # saved: a table, or a view from CREATE ... AS (counted under the query timeout)
            s.slow_tables.discard(result.name)  # a replaced table is counted afresh
            n = rows_of(result.name)
            st.success(f"Saved as {plain(result.name)} " + (f"({n:,} rows)" if n is not None else
                       "(counting its rows took longer than the query timeout and was stopped: it will be slow to use)"))
        else:
            st.dataframe(result, hide_index=True)
            if result.attrs.get("note"):
                st.caption(plain(result.attrs["note"].capitalize() + "."))
    except StudioError as exc:
        st.error(plain(str(exc)))
