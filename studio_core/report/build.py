"""The stakeholder report of a run: one HTML string, built from run directories (and a bundle).

What a stakeholder asks, in order: what was predicted from which data and how the rows were
split; how good it is on rows no decision saw (the test rows, with intervals) and against the
alternatives (the leaderboard); how training went; where it errs (curves on the test rows);
what drives it (wide weights, SHAP); and the model card with the export's parity figures.
A section that does not apply to a run (weights of a LightGBM baseline, curves of a constant)
says why instead of being left out silently.
"""

from __future__ import annotations

import datetime as _dt
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from studio_core.common.errors import StudioError
from studio_core.common.metrics import METRIC_KEYS, format_metric, headline, metric_label
from studio_core.compare.leaderboard import TEST_PREDICTIONS, kind_of, leaderboard
from studio_core.report import html as h
from studio_core.runs.folder import run_record
from studio_core.training.progress import Progress


def history_epochs(history: Sequence[dict[str, Any]]) -> tuple[Progress, ...]:
    """A run's ``history.jsonl`` records as epoch ``Progress`` records (what the curve charts draw)."""
    n = len(history)
    return tuple(Progress("epoch", r["epoch"], n, r["step"], history[-1]["step"], r.get("train_loss"),
                          MappingProxyType({k[4:]: v for k, v in r.items() if k.startswith("val_") and v is not None}),
                          tuple(r.get("lrs", ())), r.get("rows_per_s", 0.0), 0.0, r.get("elapsed_s", 0.0)) for r in history)


def _interval(ci: Any) -> str:
    return f"{ci[0]:.4f} – {ci[1]:.4f}" if isinstance(ci, list | tuple) and len(ci) == 2 else ""


def _summary(spec: Any, m: dict[str, Any], kind: str) -> str:
    task, key = m["task"], headline(m["task"])
    test, ci = m.get("test") or {}, (m.get("test_ci") or {}).get(key)
    lead = (f"test {metric_label(key)} {format_metric(key, test.get(key))}" + (f" (95 % interval {_interval(ci)})" if ci else "")
            if test else "no test rows: only validation figures, which also chose the model")
    pairs = [("predicts", f"{spec.data.label} ({task})"), ("model", kind), ("headline", lead),
             ("rows", f"{m.get('n_train', 0):,} training / {m.get('n_val', 0):,} validation / {m.get('n_test', 0):,} test"),
             ("trained", f"{m.get('epochs_run', 'n/a')} epochs (best {m.get('best_epoch', 'n/a')}), {m.get('train_seconds', 0):.1f} s on "
                         f"{m.get('device', 'cpu')}" if kind != "LightGBM" else f"{m.get('best_epoch')} trees, {m.get('train_seconds', 0):.1f} s")]
    return h.key_values(pairs)


def _data(spec: Any, m: dict[str, Any]) -> str:
    d, rec = spec.data, m.get("split") or {}
    source = f"SQL: {d.sql.strip()}" if d.sql.strip() else f"table {d.table}"
    pairs = [("rows from", source), ("files", ", ".join(f"{k} ← {v}" for k, v in d.sources.items()) or "not recorded"),
             ("split", f"{rec.get('kind', d.split)}" + (f" by {rec['column']}" if rec.get("column") else "")
                       + (", stratified by the label" if rec.get("stratified") else "") + f"; seed {rec.get('seed', d.split_seed)}"),
             ("shares", ", ".join(f"{k} {v:g}" for k, v in (rec.get("fractions") or {}).items()) or "n/a"),
             ("rows per part", ", ".join(f"{k} {v:,}" for k, v in (rec.get("counts") or {}).items()) or "n/a"),
             ("fingerprints", ", ".join(f"{k} {v}" for k, v in (rec.get("fingerprints") or {}).items()) or "n/a")]
    return (h.key_values(pairs) + h.note("Protocol: the training rows fitted the preprocessing and the weights; the validation rows made "
                                         "every decision (early stopping, learning-rate steps, tuning); the test rows were scored once, "
                                         "after training, and their figures carry 95 % bootstrap intervals. The fingerprints identify "
                                         "each part's rows, so a later evaluation on other rows is refused."))


def _test_metrics(m: dict[str, Any]) -> str:
    task, test, ci = m["task"], m.get("test") or {}, m.get("test_ci") or {}
    if not test:
        return h.note("This run has no test rows (data.test_fraction 0), so there is no honest figure to report; train it with test rows.")
    rows = [{"metric": metric_label(k), "test": test.get(k), "95 % interval": _interval(ci.get(k)),
             "validation (chose the model)": m.get(k)} for k in METRIC_KEYS[task] if k in test]
    return h.table(pd.DataFrame(rows))


def _leaderboard(paths: list[Path], names: list[str], metric: str | None) -> str:
    from studio_core.compare.charts import difference_chart, has_differences, leaderboard_table, left_out, metric_chart

    board = leaderboard(paths, metric, names=names)
    charts = [h.svg(metric_chart(board), "leaderboard")]
    if has_differences(board):
        charts.append(h.svg(difference_chart(board), "difference"))
    if left_out(board):
        charts.append(h.note(f"{', '.join(left_out(board))} (the constant baseline) is in the table, not in the charts: far below every "
                             "model, it would squeeze their intervals into one point."))
    seeds = "".join(h.note(f"{g.kind} over {len(g.runs)} seeds: {metric_label(board.metric)} {g.mean:.4f} ± {g.std:.4f} (mean ± spread)")
                    for g in board.seed_groups)
    return (h.note(f"{board.n_rows:,} shared test rows; each run's 95 % interval and its paired difference from {board.reference} "
                   f"come from the same {board.resamples:,} bootstrap resamples of those rows; P(better) is the share of resamples on "
                   "which a run beats the reference.")
            + h.table(leaderboard_table(board)) + seeds + f'<div class="charts">{"".join(charts)}</div>')


def _curves(history: list[dict[str, Any]], m: dict[str, Any]) -> str:
    from studio_core.runs.charts import loss_chart, metric_chart

    if not history:
        return h.note("No training curves: this run was not trained by epochs (a constant or a tree baseline).")
    epochs = history_epochs(history)
    charts = [h.svg(loss_chart(epochs), "loss")]
    monitor = next((k for k in (m.get("monitor"), headline(m["task"])) if k and any(k in p.val for p in epochs)), None)
    if monitor:
        charts.append(h.svg(metric_chart(epochs, monitor), "validation_metric"))
    return f'<div class="charts">{"".join(charts)}</div>'


def _thin(df: pd.DataFrame, n: int = 600) -> pd.DataFrame:
    """At most ``n`` evenly spaced points of a curve, its ends kept: the line looks the same, the SVG stays small."""
    if len(df) <= n:
        return df
    import numpy as np

    return df.iloc[np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))]


def _test_rows(run_dir: Path, m: dict[str, Any], classes: list[str] | None) -> str:
    from studio_core.runs import inspect as ins
    from studio_core.runs.charts import calibration_chart, confusion_chart, pr_chart, residual_chart, roc_chart, scatter_chart
    from studio_core.runs.evaluation import Scored

    if not (run_dir / TEST_PREDICTIONS).is_file():
        return h.note("No test rows to draw.")
    s = Scored.from_table(m["task"], pq.read_table(run_dir / TEST_PREDICTIONS))
    if s.task == "binary":
        if not ins.two_classes(s):
            return h.note("The test rows hold one class only: no ROC or precision-recall curve.")
        charts = [h.svg(roc_chart(_thin(ins.roc_frame(s)), (m.get("test") or {}).get("auc")), "roc"), h.svg(pr_chart(_thin(ins.pr_frame(s))), "pr"),
                  h.svg(calibration_chart(ins.calibration_frame(s)), "calibration")]
    elif s.task == "regression":
        charts = [h.svg(scatter_chart(s.y, s.output), "predicted_vs_actual"), h.svg(residual_chart(s.y, s.output), "residuals")]
    else:
        import numpy as np

        k = s.output.shape[1]
        names = classes or [str(i) for i in range(k)]
        pred = s.output.argmax(axis=1)
        matrix = np.zeros((k, k))
        np.add.at(matrix, (s.y.astype(int), pred), 1)
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        long = pd.DataFrame([{"true": names[i], "predicted": names[j], "rows": int(matrix[i, j]), "share": float(share[i, j])}
                             for i in range(k) for j in range(k)])
        charts = [h.svg(confusion_chart(long), "confusion")]
    return h.note(f"The {len(s):,} test rows, scored once after training.") + f'<div class="charts">{"".join(charts)}</div>'


def _weights(run: Any) -> str:
    from studio_core.runs.charts import weights_chart
    from studio_core.runs.inspect import wide_weights

    if run is None:
        return h.note("Not a Wide & Deep network: it has no wide weights.")
    if not run.spec.model.wide:
        return h.note("This run has no wide part, so no wide weights.")
    return h.note("Each wide id's weight (log-odds for a binary label; class 1's logit for multiclass): what the memorising part learnt."
                  ) + h.svg(weights_chart(wide_weights(run)), "wide_weights")


def _shap(importance: pd.DataFrame | None, output_name: str, rows: int) -> str:
    from studio_core.runs.charts import importance_chart

    if importance is None or not len(importance):
        return h.note("Not computed for this report: pass the run's data (`wdstudio report --data FILE`), or explain the run on the "
                      "Explain page before downloading the report.")
    return (h.note(f"Mean |SHAP value| per original column over {rows:,} validation rows: how far each column moves the {output_name} "
                   "on average.") + h.svg(importance_chart(importance, output_name), "shap_importance"))


def _bundle(bundle: Path, m: dict[str, Any]) -> tuple[str, str]:
    """The bundle's model card (Markdown) and its parity figures as HTML, checked to come from this run."""
    try:
        with zipfile.ZipFile(bundle) as z:
            manifest = json.loads(z.read("bundle.json"))
            card = z.read("model_card.md").decode("utf-8")
            exported = json.loads(z.read("metrics.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StudioError(f"{bundle} is not a bundle written by `wdstudio export` ({type(exc).__name__}); pass the zip it wrote") from None
    if (exported.get("split") or {}).get("fingerprints") != (m.get("split") or {}).get("fingerprints") or exported.get("test") != m.get("test"):
        raise StudioError(f"{bundle} was exported from another run; pass the bundle of this run (or leave --bundle out)")
    p = manifest.get("parity") or {}
    rows = [{"check": "model.onnx vs PyTorch (logit)", "max abs diff": p.get("model_max_abs_diff")}]
    if p.get("raw_logit_max_abs_diff") is not None:
        rows += [{"check": "raw.onnx vs the engine (logit)", "max abs diff": p.get("raw_logit_max_abs_diff")},
                 {"check": "raw.onnx vs the engine (prediction)", "max abs diff": p.get("raw_prediction_max_abs_diff")}]
    verdict = "passed" if p.get("ok") else "FAILED: do not serve this bundle"
    body = (h.note(f"Parity {verdict}: checked on {p.get('rows_source', 'n/a')}, tolerance {p.get('tolerance', 'n/a')}; the worst row used "
                   f"{p.get('tolerance_used', float('nan')):.3g} of it; preprocessed ids differing: {p.get('raw_id_mismatches', 'n/a')}.")
            + h.table(pd.DataFrame(rows), numbers=9))
    return card, body


def build_report(run_dir: str | Path, compare: Sequence[str | Path] = (), bundle: str | Path | None = None,
                 shap: tuple[pd.DataFrame, str, int] | None = None, metric: str | None = None,
                 names: Sequence[str] | None = None) -> str:
    """The report of the run at ``run_dir`` as one self-contained HTML document.  ``compare``:
    runs for the leaderboard (the run first, as reference); ``bundle``: its exported zip, for
    the card and parity figures; ``shap``: (importance frame, output name, rows explained);
    ``names``: how the leaderboard names the run and each compared run."""
    from studio_core import __version__

    run_dir = Path(run_dir)
    spec, m = run_record(run_dir)
    kind = kind_of(spec, m)
    from studio_core.runs.store import LIGHTGBM_MODEL, read_record

    _metrics, history = read_record(run_dir)
    run = None
    if not (run_dir / LIGHTGBM_MODEL).is_file():
        from studio_core.runs.store import load_run

        run = load_run(run_dir)
    paths = [run_dir, *(Path(p) for p in compare)]
    labels = list(names) if names is not None else [p.name for p in paths]
    sections = [h.section("Summary", _summary(spec, m, kind), "summary"), h.section("Data and split", _data(spec, m), "data"),
                h.section("Test metrics", _test_metrics(m), "test")]
    if compare:
        sections.append(h.section("Leaderboard", _leaderboard(paths, labels, metric), "leaderboard"))
    sections += [h.section("Training curves", _curves(history, m), "curves"),
                 h.section("On the test rows", _test_rows(run_dir, m, list(run.preprocessor.classes_) if run is not None and m["task"] == "multiclass" else None), "holdout"),
                 h.section("Wide weights", _weights(run), "weights"),
                 h.section("What moves the score (SHAP)", _shap(*(shap or (None, "", 0))), "shap")]
    card, parity = None, None
    if bundle is not None:
        card, parity = _bundle(Path(bundle), m)
    elif run is not None:
        from studio_core.export.model_card import model_card

        card = model_card(run, run.preprocessor)
    if card is not None:
        sections.append(h.section("Model card", h.markdown(card), "card"))
    else:
        sections.append(h.section("Model card", h.note("A LightGBM baseline has no model card; its notes: "
                                                       + "; ".join(m.get("notes", []))), "card"))
    sections.append(h.section("Export parity", parity if parity is not None else h.note(
        "No bundle given: export the run (`wdstudio export`, or the Export page) and pass it with --bundle to add its parity figures."),
        "parity"))
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return h.page(f"{kind} model of {spec.data.label}", f"Run {labels[0]} · {m['task']} · report created {created}", sections,
                  f"Wide & Deep Studio {__version__}: one self-contained file; its charts are inline SVG and it fetches nothing.")


def write_report(out: str | Path, text: str) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    import os
    import uuid

    out = Path(out)
    if out.is_dir():
        raise StudioError(f"{out} is a folder; pass a file name for the report, e.g. {out / 'report.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StudioError(f"could not write the report to {out} ({exc.strerror or exc}); choose another --out") from None
    return out
