"""The leaderboard drawn: a table frame, each run's test metric with its 95 % interval, and each
run's paired difference from the reference with its interval and a line at zero (Altair, so the
studio and an offline report draw the same charts)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from studio_core.common.metrics import metric_label
from studio_core.compare.leaderboard import Leaderboard
from studio_core.compare.slices import SliceBoard


def leaderboard_table(board: Leaderboard) -> pd.DataFrame:
    """The leaderboard as an analyst reads it (the CLI's columns): the metric, its interval, the
    paired difference with its interval, P(better); the reference row says so."""
    m, label = board.metric, metric_label(board.metric)
    rows = []
    for r in board.rows:
        ci, dci = r.test_ci.get(m), r.diff_ci.get(m)
        ref = r.run == board.reference
        rows.append({"run": r.run, "kind": r.kind, f"test {label}": r.test.get(m),
                     "95 % interval": f"{ci[0]:.4f} – {ci[1]:.4f}" if ci else "",
                     "difference": "reference" if ref else f"{r.diff[m]:+.4f}",
                     "paired 95 % interval": "" if ref or not dci else f"{dci[0]:+.4f} – {dci[1]:+.4f}",
                     "P(better)": "" if ref else (f"{r.p_better:.3f}" if r.p_better is not None else "undefined")})
    return pd.DataFrame(rows)


def leaderboard_frame(board: Leaderboard) -> pd.DataFrame:
    """One row per run: kind, the metric and its interval, the paired difference, its interval, P(better)."""
    m = board.metric
    rows = []
    for r in board.rows:
        ci, dci = r.test_ci.get(m) or [None, None], r.diff_ci.get(m) or [None, None]
        rows.append({"run": r.run, "kind": r.kind, m: r.test.get(m), "low": ci[0], "high": ci[1],
                     "difference": None if r.run == board.reference else r.diff.get(m),
                     "difference low": dci[0], "difference high": dci[1], "P(better)": r.p_better})
    return pd.DataFrame(rows)


FLOOR_KINDS = ("constant",)  # a floor, far from every model: listed in the table, kept off the charts' scale


def charted(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a chart draws: without the constant baseline when anything else is there -- at
    AUC 0.5 it would stretch the axis until the models' intervals are dots on top of each other."""
    keep = ~df["kind"].isin(FLOOR_KINDS)
    return df[keep] if keep.any() else df


def left_out(board: Leaderboard) -> list[str]:
    """The runs the charts leave out (said under them)."""
    df = leaderboard_frame(board)
    return sorted(set(df["run"]) - set(charted(df)["run"]))


def has_differences(board: Leaderboard) -> bool:
    """Whether the difference chart has a run to draw (another charted run than the reference)."""
    return bool(set(charted(leaderboard_frame(board))["run"]) - {board.reference})


def metric_chart(board: Leaderboard) -> alt.Chart:
    """Each run's test metric (a point) and its 95 % interval (a rule), runs in leaderboard order."""
    df, m = charted(leaderboard_frame(board)), board.metric
    y = alt.Y("run:N", sort=list(df["run"]), title=None)
    title = f"test {metric_label(m)} (95 % intervals)"
    bars = alt.Chart(df, title=title).mark_rule(color="#457b9d", strokeWidth=2).encode(
        y=y, x=alt.X("low:Q", title=f"test {metric_label(m)}", scale=alt.Scale(zero=False)), x2="high:Q")
    points = alt.Chart(df).mark_point(filled=True, size=70, color="#1d3557").encode(
        y=y, x=alt.X(f"{m}:Q", title=f"test {metric_label(m)}"), tooltip=["run", "kind", alt.Tooltip(f"{m}:Q", format=".4f")])
    return (bars + points).properties(height=alt.Step(32))  # a row per run, whatever the container's height


def difference_chart(board: Leaderboard) -> alt.Chart:
    """Each other run minus the reference, with its paired 95 % interval and a dashed line at 0."""
    df, m = charted(leaderboard_frame(board)), board.metric
    df = df[df["run"] != board.reference]
    y = alt.Y("run:N", sort=list(df["run"]), title=None)
    x_title = f"{metric_label(m)} minus {board.reference}'s"
    bars = alt.Chart(df, title="Paired difference from the reference (95 % intervals)").mark_rule(color="#e76f51", strokeWidth=2).encode(
        y=y, x=alt.X("difference low:Q", title=x_title), x2="difference high:Q")
    points = alt.Chart(df).mark_point(filled=True, size=70, color="#9d0208").encode(
        y=y, x=alt.X("difference:Q", title=x_title), tooltip=["run", "kind", alt.Tooltip("difference:Q", format="+.4f"),
                                                               alt.Tooltip("P(better):Q", format=".3f")])
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(strokeDash=[4, 4], color="grey").encode(x=alt.X("zero:Q", title=x_title))
    return (zero + bars + points).properties(height=alt.Step(32))


def slice_frame(board: SliceBoard) -> pd.DataFrame:
    """One row per (slice, run): rows, the metric and its interval, the paired difference's
    interval, and whether the slice's ranking differs from the overall one."""
    rows = []
    for s in board.slices:
        flag = ("flips (significant)" if s.significant else "differs") if s.flips else ""
        for run, value in s.metric.items():
            ci, d = s.ci.get(run) or [None, None], s.diff_ci.get(run)
            rows.append({"slice": s.value, "rows": s.rows, "run": run, board.metric: value, "low": ci[0], "high": ci[1],
                         "paired difference 95 %": "reference" if run == board.reference else (f"{d[0]:+.4f} – {d[1]:+.4f}" if d else ""),
                         "ranking": flag})
    return pd.DataFrame(rows)


def slice_chart(board: SliceBoard) -> alt.Chart:
    """Per slice (a row of the chart), each run's metric and its interval, coloured by run."""
    df, m = slice_frame(board).dropna(subset=[board.metric]), board.metric
    if set(df["run"]) - set(board.floor):  # the constant baseline would squeeze the models into one point
        df = df[~df["run"].isin(board.floor)].copy()
    df["slice "] = [f"{v} ({n:,} rows)" + (" ⚠" if f else "") for v, n, f in zip(df["slice"], df["rows"], df["ranking"])]
    order = list(dict.fromkeys(df["slice "]))
    x_title = f"test {metric_label(m)} (95 % intervals)"
    colour = alt.Color("run:N", sort=board.overall_order, title="run")
    y = alt.Y("slice :N", sort=order, title=None)
    offset = alt.YOffset("run:N", sort=board.overall_order)
    bars = alt.Chart(df, title=f"test {metric_label(m)} per {board.column}").mark_rule(strokeWidth=2).encode(
        y=y, yOffset=offset, x=alt.X("low:Q", title=x_title, scale=alt.Scale(zero=False)), x2="high:Q", color=colour)
    points = alt.Chart(df).mark_point(filled=True, size=60).encode(
        y=y, yOffset=offset, x=alt.X(f"{m}:Q", title=x_title), color=colour,
        tooltip=["slice", "rows", "run", alt.Tooltip(f"{m}:Q", format=".4f"), "paired difference 95 %", "ranking"])
    return (bars + points).properties(height=alt.Step(14))
