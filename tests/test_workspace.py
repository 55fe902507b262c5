import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio_core.common.errors import StudioError
from studio_core.data.profile import profile
from studio_core.data.workspace import Workspace


def test_parquet_sql_join_and_save_as_table(tmp_path, synthetic_csv):
    pq.write_table(pa.table({"colour": ["red", "green", "blue", "grey"], "hex": ["f00", "0f0", "00f", "888"]}), tmp_path / "Colours.parquet")
    ws = Workspace()
    ws.load(synthetic_csv)
    assert ws.load(tmp_path / "Colours.parquet").table == "colours"
    joined = ws.run_sql("SELECT s.*, c.hex FROM synthetic s JOIN colours c USING (colour)", save_as="joined")
    assert "hex" in joined.columns and joined.n_rows() == ws.table("synthetic").n_rows()
    assert set(ws.tables()) == {"synthetic", "colours", "joined"}
    preview = ws.run_sql("SELECT * FROM joined", limit=5)
    assert len(preview) == 5
    with pytest.raises(StudioError, match="SQL error"):
        ws.run_sql("SELECT nope FROM joined")
    assert "joined" in ws.tables()  # a failed query loses nothing


def test_profile_uses_sql_aggregates(synthetic_csv):
    ws = Workspace()
    ws.load(synthetic_csv)
    prof = {c.name: c for c in profile(ws, "synthetic")}
    assert prof["x1"].numeric and prof["x1"].min < 0 < prof["x1"].max and prof["x1"].std > 0.5
    assert prof["x2"].nulls == len([i for i in range(1200) if i % 17 == 0])
    assert prof["colour"].distinct == 4 and sum(n for _, n in prof["colour"].top_values) == 1200


def test_unknown_table_names_what_exists(synthetic_csv):
    ws = Workspace()
    ws.load(synthetic_csv)
    with pytest.raises(StudioError, match="synthetic"):
        ws.table("nope")


def test_register_frame_copies_a_dataframe_and_cleans_inf():
    import pandas as pd

    ws = Workspace()
    ws.register_frame("rows", pd.DataFrame({"a": [1.0, float("inf"), 3.0], "b": ["x", "y", None]}))
    assert ws.table("rows").n_rows() == 3
    assert ws.con.execute("SELECT count(a), count(b) FROM rows").fetchall()[0] == (2, 2)


@pytest.mark.parametrize("sql", ["DROP TABLE synthetic", "SELECT 1; DROP TABLE synthetic", "COPY synthetic TO '/tmp/x.csv'", "INSTALL httpfs", ""])
def test_query_box_runs_only_a_single_select(synthetic_csv, sql):
    ws = Workspace()
    ws.load(synthetic_csv)
    with pytest.raises(StudioError, match="SELECT"):
        ws.run_sql(sql)
    assert ws.table("synthetic").n_rows() == 1200
