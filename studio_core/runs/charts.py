"""Altair chart builders shared by the studio and by reports (no Streamlit here)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from studio_core.common.metrics import metric_label
from studio_core.training.progress import Progress


def epoch_frame(epochs: Sequence[Progress]) -> pd.DataFrame:
    rows = []
    for p in epochs:
        rows.append({"epoch": p.epoch, "series": "train loss", "value": p.train_loss})
        if "loss" in p.val:
            rows.append({"epoch": p.epoch, "series": "validation loss", "value": p.val["loss"]})
    return pd.DataFrame(rows, columns=["epoch", "series", "value"])


def loss_chart(epochs: Sequence[Progress]) -> alt.Chart:
    return alt.Chart(epoch_frame(epochs), title="Loss per epoch").mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("value:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None), tooltip=["epoch", "series", alt.Tooltip("value:Q", format=".4f")])


def metric_chart(epochs: Sequence[Progress], metric: str) -> alt.Chart:
    df = pd.DataFrame({"epoch": [p.epoch for p in epochs], metric: [p.val.get(metric) for p in epochs]})
    return alt.Chart(df, title=f"Validation {metric_label(metric)}").mark_line(point=True, color="#2a9d8f").encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y(f"{metric}:Q", title=f"validation {metric_label(metric)}",
                                                              scale=alt.Scale(zero=False)),
        tooltip=["epoch", alt.Tooltip(f"{metric}:Q", format=".4f")])


def step_chart(steps: Sequence[tuple[int, float]]) -> alt.Chart:
    df = pd.DataFrame(steps, columns=["step", "smoothed loss"])
    return alt.Chart(df, title="Training loss per step (smoothed)").mark_line(color="#e76f51").encode(
        x="step:Q", y=alt.Y("smoothed loss:Q", scale=alt.Scale(zero=False)))


def column_chart(values: pd.DataFrame, name: str, numeric: bool) -> alt.Chart:
    """A small histogram (numeric) or top-values bar chart of one column.  The column is renamed
    to ``value`` first: a user's column name (``a:b``, ``x.y``, ``[0]``) is not a safe Vega-Lite
    field name, and only ever appears as a title."""
    if numeric:
        values = values[[name]].set_axis(["value"], axis=1)
        return alt.Chart(values).mark_bar(color="#457b9d").encode(
            x=alt.X("value:Q", bin=alt.Bin(maxbins=30), title=name), y=alt.Y("count():Q", title="rows")).properties(height=160)
    return alt.Chart(values).mark_bar(color="#457b9d").encode(
        x=alt.X("rows:Q"), y=alt.Y("value:N", sort="-x", title=name)).properties(height=160)


def _diagonal(lo: float, hi: float, x_title: str, y_title: str) -> alt.Chart:
    """The dashed y = x line (chance on ROC, perfect calibration, perfect predictions).  It
    repeats the main layer's axis titles: Vega-Lite joins differing layer titles ("a, x") and
    drops the axis title when one layer's is None."""
    return alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(strokeDash=[4, 4], color="grey").encode(
        x=alt.X("x:Q", title=x_title), y=alt.Y("y:Q", title=y_title))


def roc_chart(df: pd.DataFrame, auc: float | None) -> alt.Chart:
    from studio_core.common.metrics import format_metric

    line = alt.Chart(df, title=f"ROC (AUC {format_metric('auc', auc)})").mark_line().encode(
        x=alt.X("false_positive_rate:Q", title="false positive rate"), y=alt.Y("true_positive_rate:Q", title="true positive rate"))
    return line + _diagonal(0, 1, "false positive rate", "true positive rate")


def pr_chart(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df, title="Precision-recall").mark_line(color="#8338ec").encode(x=alt.X("recall:Q", title="recall"),
                                                                                     y=alt.Y("precision:Q", title="precision"))


def calibration_chart(df: pd.DataFrame) -> alt.Chart:
    pts = alt.Chart(df, title="Calibration").mark_line(point=True).encode(
        x=alt.X("predicted:Q", title="predicted probability", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("observed:Q", title="observed share of positives", scale=alt.Scale(domain=[0, 1])), tooltip=["rows"])
    return pts + _diagonal(0, 1, "predicted probability", "observed share of positives")


def scatter_chart(actual, predicted) -> alt.Chart:
    df = pd.DataFrame({"actual": actual, "predicted": predicted}).sample(n=min(len(actual), 5000), random_state=0)
    points = alt.Chart(df, title=alt.TitleParams("Predicted vs actual", subtitle="dashed line: perfect predictions")).mark_circle(opacity=0.4).encode(
        x=alt.X("actual:Q", title="actual", scale=alt.Scale(zero=False)), y=alt.Y("predicted:Q", title="predicted", scale=alt.Scale(zero=False)))
    lo, hi = float(min(df.actual.min(), df.predicted.min())), float(max(df.actual.max(), df.predicted.max()))
    return points + _diagonal(lo, hi, "actual", "predicted")


def weights_chart(df: pd.DataFrame, top: int = 15) -> alt.Chart:
    """The strongest positive and negative wide weights."""
    pick = pd.concat([df.head(top), df.tail(top)]).drop_duplicates()
    pick = pick.assign(label=pick.feature + " = " + pick.value.astype(str))
    return alt.Chart(pick, title="Wide weights: what pushes the score up or down").mark_bar().encode(
        x=alt.X("weight:Q"), y=alt.Y("label:N", sort="-x", title=None),
        color=alt.condition("datum.weight > 0", alt.value("#2a9d8f"), alt.value("#e63946")), tooltip=["feature", "value", "weight", "count"])


def effect_chart(curve: pd.DataFrame, column: str) -> alt.Chart:
    """A numeric column's wide weights as a step curve over its buckets (``inspect.effect_curve``)."""
    known = curve[curve.bucket > 0]
    points = pd.concat([known[["start", "weight", "interval"]].rename(columns={"start": "value"}),
                        known.tail(1)[["end", "weight", "interval"]].rename(columns={"end": "value"})], ignore_index=True)
    return alt.Chart(points, title=alt.TitleParams(f"Wide effect of {column}", subtitle="the weight each bucket adds to the logit")
                     ).mark_line(interpolate="step-after", point=alt.OverlayMarkDef(color="#e76f51"), color="#f4a261").encode(
        x=alt.X("value:Q", title=column), y=alt.Y("weight:Q", title="wide weight (logit)"),
        tooltip=["interval", alt.Tooltip("weight:Q", format="+.4f")])


def trials_chart(values: list[tuple[int, float]], monitor: str, higher_is_better: bool) -> alt.Chart:
    """Each tuning trial's validation score (points) under the best so far (a step line)."""
    rows, best = [], None
    for number, value in values:
        best = value if best is None or (value > best if higher_is_better else value < best) else best
        rows.append({"trial": number + 1, "value": value, "best": best})
    df = pd.DataFrame(rows, columns=["trial", "value", "best"])
    y = alt.Y("value:Q", title=f"validation {monitor}", scale=alt.Scale(zero=False))
    points = alt.Chart(df, title="Tuning trials (validation rows)").mark_circle(size=60, color="#264653").encode(
        x=alt.X("trial:Q", title="trial", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(zero=False)), y=y, tooltip=["trial", alt.Tooltip("value:Q", format=".4f")])
    line = alt.Chart(df).mark_line(interpolate="step-after", color="#e63946").encode(x="trial:Q", y=alt.Y("best:Q", title=f"validation {monitor}"))
    return points + line


def residual_chart(actual, predicted) -> alt.Chart:
    df = pd.DataFrame({"residual": pd.Series(predicted) - pd.Series(actual)})
    return alt.Chart(df, title="Residuals (predicted - actual)").mark_bar(color="#457b9d").encode(
        x=alt.X("residual:Q", bin=alt.Bin(maxbins=40)), y=alt.Y("count():Q", title="rows"))


def importance_chart(df: pd.DataFrame, output_name: str) -> alt.Chart:
    """Global SHAP importance: mean |SHAP| per original column."""
    return alt.Chart(df, title="Which columns move the score (mean |SHAP|)").mark_bar(color="#457b9d").encode(
        x=alt.X("mean_abs_shap:Q", title=f"mean |SHAP| ({output_name})"), y=alt.Y("feature:N", sort="-x", title=None),
        tooltip=["feature", alt.Tooltip("mean_abs_shap:Q", format=".4f")])


def beeswarm_chart(long: pd.DataFrame, order: list[str], output_name: str, top: int = 20) -> alt.Chart:
    """One dot per (row, column): SHAP value across, coloured by the value's percentile among
    the explained rows (grey for text columns), jittered within the column's band.  Text columns
    have no percentile: it is -1 here, since Vega-Lite drops a point whose colour field is null.
    The ``top`` columns of ``order`` are drawn (a wide table's bands would run off the page)."""
    shown = order[:top]
    long = long[long.feature.isin(shown)].assign(percentile=lambda d: d.percentile.fillna(-1.0))
    title = "Every explained row, column by column" + (f" (the top {top} of {len(order)} columns)" if len(order) > top else "")
    order = shown
    return alt.Chart(long, title=title).mark_circle(size=28, opacity=0.75).encode(
        x=alt.X("shap:Q", title=f"SHAP ({output_name})"), y=alt.Y("feature:N", sort=order, title=None),
        yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.condition("datum.percentile >= 0",  # text columns have no percentile: grey, not hidden
                            alt.Color("percentile:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[0, 1]), title="value percentile"),
                            alt.value("#8d99ae")),
        tooltip=["row", "feature", "value", alt.Tooltip("shap:Q", format="+.4f")],
    ).transform_calculate(jitter="random()").properties(height=alt.Step(26))  # a band per column, however many


def waterfall_chart(df: pd.DataFrame, base: float, output: float, output_name: str, top: int = 12) -> alt.Chart:
    """One row's SHAP values as a waterfall from the base value to its output."""
    shown = df.head(top).copy()
    rest = df.iloc[top:]
    if len(rest):
        shown.loc[len(shown)] = {"feature": f"{len(rest)} other columns", "value": "", "shap": rest.shap.sum(),
                                 "start": rest.start.iloc[0], "end": rest.end.iloc[-1]}
    shown["label"] = shown.feature + shown.value.map(lambda v: f" = {v}" if v else "")
    order = list(shown.label)
    bars = alt.Chart(shown, title=f"From the average ({base:+.3f}) to this row ({output:+.3f}), {output_name}").mark_bar().encode(
        x=alt.X("start:Q", title=output_name, scale=alt.Scale(zero=False)), x2="end:Q", y=alt.Y("label:N", sort=order, title=None),
        color=alt.condition("datum.shap > 0", alt.value("#2a9d8f"), alt.value("#e63946")),
        tooltip=["feature", "value", alt.Tooltip("shap:Q", format="+.4f")])
    rule = alt.Chart(pd.DataFrame({"x": [base]})).mark_rule(strokeDash=[4, 4], color="grey").encode(x="x:Q")
    return bars + rule


def split_chart(wide: float, deep: float, bias: float) -> alt.Chart:
    """The score as wide + deep + bias."""
    df = pd.DataFrame({"part": ["wide", "deep", "bias"], "logit": [wide, deep, bias]})
    return alt.Chart(df, title="Wide + deep + bias").mark_bar().encode(
        x=alt.X("logit:Q", title="contribution to the output"), y=alt.Y("part:N", sort=["wide", "deep", "bias"], title=None),
        color=alt.Color("part:N", legend=None, scale=alt.Scale(domain=["wide", "deep", "bias"], range=["#f4a261", "#264653", "#adb5bd"])),
        tooltip=["part", alt.Tooltip("logit:Q", format="+.4f")])  # no fixed height: Streamlit squeezed a nominal axis into it


def dependence_chart(curves: pd.DataFrame, mean: pd.DataFrame, column: str, numeric: bool, output_label: str) -> alt.Chart:
    """ICE curves (one thin line per row) under the partial dependence (the thick mean line):
    how the score moves when only ``column`` changes.  Categories keep their grid order."""
    x = alt.X("value:Q", title=column) if numeric else alt.X("value:N", title=column, sort=list(mean.value.astype(str)))
    curves = curves.assign(value=curves.value.astype(float if numeric else str))
    mean = mean.assign(value=mean.value.astype(float if numeric else str))
    ice = alt.Chart(curves, title=alt.TitleParams(f"How the score moves with {column} alone",
                                                  subtitle="thin lines: one row each (ICE); thick line: their mean (partial dependence)")
                    ).mark_line(opacity=0.18, strokeWidth=1, color="#8d99ae").encode(
        x=x, y=alt.Y("prediction:Q", title=output_label), detail="row:N")
    avg = alt.Chart(mean).mark_line(strokeWidth=3, color="#e63946", point=True).encode(
        x=x, y="prediction:Q", tooltip=[alt.Tooltip("value", title=column), alt.Tooltip("prediction:Q", format=".4f", title="mean")])
    return ice + avg


def confusion_chart(matrix: pd.DataFrame) -> alt.Chart:
    """A multiclass confusion matrix: true class down, predicted class across, each cell's rows
    as colour and as text (``matrix``: true, predicted, rows, share of the true class)."""
    order = list(dict.fromkeys(matrix["true"]))
    base = alt.Chart(matrix, title="Confusion matrix (rows: true class; columns: predicted)").encode(
        x=alt.X("predicted:N", sort=order, title="predicted"), y=alt.Y("true:N", sort=order, title="true"))
    cells = base.mark_rect().encode(color=alt.Color("share:Q", title="share of the true class", scale=alt.Scale(scheme="blues", domain=[0, 1])),
                                    tooltip=["true", "predicted", "rows", alt.Tooltip("share:Q", format=".1%")])
    text = base.mark_text(fontSize=12).encode(text="rows:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(height=alt.Step(36))  # a band per class (a fixed height was squashed when layered)
