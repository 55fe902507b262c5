"""The bundle's Markdown model card and the export command's console summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio_core.common.metrics import METRIC_KEYS, format_metric
from studio_core.export.int8 import BATCH_CHECK_ROWS
from studio_core.export.onnx_run import TOLERANCE_TEXT
from studio_core.features.preprocess import Preprocessor
from studio_core.runs.results import change_text, int8_change, interval_text

if TYPE_CHECKING:  # runs.py imports torch: only for type hints here
    from studio_core.runs.store import Run


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def model_card(run: Run, prep: Preprocessor, manifest: dict[str, Any] | None = None, figures: dict[str, Any] | None = None) -> str:
    """The bundle's Markdown model card: data, features, metrics, parity, INT8, use and limits.
    Without a bundle (``manifest`` None: a report on a run not exported yet) the export sections
    say how to export it."""
    spec, m, f = run.spec, run.metrics, prep.features
    d = spec.data
    source = f"SQL `{d.sql.strip()}`" if d.sql.strip() else f"table `{d.table}`"
    files = ", ".join(f"`{k}` ({v})" for k, v in d.sources.items()) or "not recorded"
    lines = [f"# Model card: Wide & Deep model for `{prep.label}`", "",
             (f"Exported {manifest['created']} by Wide & Deep Studio {manifest['engine_version']} from run `{Path(run.path).name}`."
              if manifest is not None else f"Run `{Path(run.path).name}`, not exported yet."), "",
             "## Data", f"- Rows: {source}; files: {files}",
             f"- Task: {prep.task}" + (f", positive class `{prep.positive_class}` (prediction = its probability)" if prep.task == "binary"
                                        else f", classes {', '.join(f'`{c}`' for c in prep.classes_)} (prediction = the most likely; "
                                             "`p_<class>` = each class's probability)" if prep.task == "multiclass"
                                        else f", prediction on the label's scale (training mean {prep.label_mean_:.4g}, std {prep.label_std_:.4g})"),
             f"- Split: {m.get('n_train', 'n/a')} training / {m.get('n_val', 'n/a')} validation / {m.get('n_test', 'n/a')} test rows "
             + _split_text(m.get("split")), "",
             *_test_lines(m, prep.task), "",
             "## Features"]
    for n in f.numeric:
        extra = [x for x, on in (("bucket embedding", n.embed), ("wide bucket", n.wide)) if on]
        lines.append(f"- `{n.name}`: numeric, {n.transform}" + (f" ({n.buckets} quantile buckets)" if n.transform == "bucketize" else "")
                     + (f"; {', '.join(extra)}" if extra else ""))
    for c in f.categorical:
        fitted = prep.encoders_[f"cat:{c.name}"]
        enc = f"vocabulary of {fitted.n_ids_ - 1} values" if hasattr(fitted, "vocabulary_") else f"hashed into {fitted.n_ids_ - 1} buckets"
        parts = [p for p, on in (("deep", c.deep), ("wide", c.wide)) if on]
        lines.append(f"- `{c.name}`: categorical, {enc}; {' + '.join(parts) or 'unused'}")
    for i, x in enumerate(f.crosses):
        fitted = prep.encoders_[f"cross:{i}"]
        lines.append(f"- cross {' x '.join(f'`{c}`' for c in x.columns)}: {fitted.encoding}"
                     + (f" ({fitted.n_ids_ - 1} buckets)" if fitted.encoding == "hash" else f" ({fitted.n_ids_ - 1} combinations)"))
    mm = spec.model
    lines += ["", "## Model",
              f"- Wide part: {'on' if mm.wide else 'off'}; deep part: {'on' if mm.deep else 'off'}, hidden units {mm.hidden_units}"
              + (f", field attention ({mm.attention_heads} heads x {mm.attention_layers} layers)" if mm.attention else ""),
              f"- Trained {m.get('epochs_run', 'n/a')} epochs (best epoch {m.get('best_epoch', 'n/a')}) on {m.get('device', 'cpu')}"
              + (f" with {m['processes']} processes" if m.get("processes", 1) > 1 else "")
              + (", streamed out of core" if m.get("out_of_core") else "") + (f", autocast {m['amp']}" if m.get("amp") else ""),
              *[f"- Note: {note}" for note in prep.notes_], "",
              "## Validation metrics (these rows chose the best epoch and the learning-rate steps)"]
    keys = {"binary": ["auc", "logloss", "accuracy"], "multiclass": ["accuracy", "macro_f1", "logloss", "macro_auc"]}.get(prep.task, ["rmse", "mae", "r2"])
    lines += [f"- {k}: {format_metric(k, m.get(k))}" for k in keys if k in m]
    if manifest is None or figures is None:
        lines += ["", "## ONNX export and parity",
                  "- Not exported yet: `wdstudio export --run RUN --data FILE --out bundle.zip` (or the Export page) writes the graphs "
                  "and measures their parity with the trained model."]
    else:
        lines += _export_lines(prep, manifest, figures)
    lines += ["", "## Intended use",
              f"- Scoring rows shaped like the training data (same columns and meaning) to predict `{prep.label}`.",
              "- `wdstudio score --bundle B.zip --data NEW.csv --out preds.csv` (onnxruntime only, no PyTorch).", "",
              "## Limits",
              "- Learned from the training rows only: shifts in the data, new populations or columns with a new meaning are not accounted for.",
              "- Unseen or rare categories all share one id (0), as do missing values; numbers outside the training range fall in the end buckets.",
              "- A missing column in new data is scored as all-missing (with a warning).",
              "- A text value equal to the sentinel U+0000 is read as missing by `raw.onnx`.",
              "- INT8 graphs trade small score changes (see above) for size, and their scores depend slightly on the other rows "
              "of the same call; use the float graphs when exact or reproducible scores matter.",
              "- Test figures are estimates from one split, with their 95 % bootstrap intervals; they are not guarantees for other data."]
    return "\n".join(lines) + "\n"


def _export_lines(prep: Preprocessor, manifest: dict[str, Any], figures: dict[str, Any]) -> list[str]:
    """The bundle's ONNX, parity and INT8 sections."""
    p = figures["parity"]
    lines = ["", "## ONNX export and parity",
             f"- Graphs: {', '.join(f'`{g}`' for g in figures['graphs'])}; score with `{figures['score_with']}`; opset {manifest['opset']}",
              *([] if p["ok"] else [f"- **PARITY CHECK FAILED**: an ONNX graph differs from the trained model by "
                                    f"{p['tolerance_used']:.3g} times the tolerance. Do not serve this bundle; "
                                    "report it with this card and bundle.json."]),
              f"- Checked on {p['rows_source']}; tolerance {TOLERANCE_TEXT}; worst row used {p['tolerance_used']:.3g} of it",
              f"- `model.onnx` vs PyTorch, logit: max abs diff {fmt(p['model_max_abs_diff'])}"]
    if "raw.onnx" in figures["graphs"]:
        lines += [f"- `raw.onnx` vs the engine (DuckDB + Python preprocessing + PyTorch): logit {fmt(p['raw_logit_max_abs_diff'])}, "
                  f"prediction {fmt(p['raw_prediction_max_abs_diff'])}; preprocessed ids differing: {p['raw_id_mismatches']}"]
    else:
        lines += [f"- No raw-row graph: {p.get('raw_unavailable')}. Scoring applies `preprocess.json` in Python, then `model.onnx`."]
    q = figures["int8"]
    lines += ["", "## INT8"]
    if q is None:
        lines.append("- Not exported (export with `--int8`).")
    else:
        lines += [f"- Dynamic quantisation (weights {q['weight_type']}), chosen by measurement: {q['chosen']}",
                  f"- Size: {q['int8_bytes']:,} bytes vs {q['float_bytes']:,} (ratio {q['size_ratio']:.3f})"]
        if q.get("validation_rows"):
            metric = (f"AUC {fmt(q['auc_float'])} -> {fmt(q['auc_int8'])} ({change_text('AUC', q['auc_change'])})" if prep.task == "binary"
                      else f"accuracy {fmt(q['accuracy_float'])} -> {fmt(q['accuracy_int8'])} (change {q['accuracy_change']:+.4f})" if prep.task == "multiclass"
                      else f"RMSE {fmt(q['rmse_float'])} -> {fmt(q['rmse_int8'])} (change {q['rmse_change']:+.5g})")
            lines += [f"- On {q['validation_rows']} validation rows: {metric}; largest prediction change {fmt(q['max_score_change'])}",
                      f"- Batch dependence: activations are quantised per call, so a row's INT8 score moves with the rows scored "
                      f"beside it; scored alone vs with all validation rows, up to {fmt(q['batch_dependence_max_change'])} "
                      f"(first {min(BATCH_CHECK_ROWS, q['validation_rows'])} rows). An extreme value in a batch can move the others more."]
        else:
            lines += [f"- {q['note']}; largest prediction change on synthetic rows {fmt(q['max_score_change_synthetic'])}"]
        lines.append("- Candidates measured: " + "; ".join(f"{c['label']}: ratio {c['size_ratio']:.3f}, max change {fmt(c['max_score_change'])}"
                                                          for c in q["candidates"]))
    return lines


def _split_text(record: Any) -> str:
    if not isinstance(record, dict):
        return "(not recorded)"
    kind = {"random": "random" + (", stratified by the label" if record.get("stratified") else ""),
            "time": f"time-ordered by `{record.get('column')}` (validation and test are the latest rows)",
            "group": f"grouped by `{record.get('column')}` (each value in one part)",
            "column": f"named by column `{record.get('column')}`"}.get(record.get("kind"), str(record.get("kind")))
    return f"({kind}; seed {record.get('seed')}; fingerprints {', '.join(f'{k} {v}' for k, v in record.get('fingerprints', {}).items())})"


def _test_lines(m: dict[str, Any], task: str) -> list[str]:
    """The card's lead figures: the test rows, scored once after training, with 95 % intervals."""
    out = ["## Test metrics (held-out rows, scored once after training; no decision used them)"]
    if not m.get("test"):
        return out + ["- No test rows: the validation figures below are the only ones, and they are optimistic (they chose the epoch)."]
    ci = m.get("test_ci", {})
    for k in METRIC_KEYS[task]:
        iv = interval_text(ci.get(k))
        out.append(f"- {k}: {format_metric(k, m['test'].get(k))}" + (f" (95% bootstrap interval {iv})" if iv else ""))
    return out + [f"- Test rows: {m.get('n_test', 0):,}"]


def figures_text(figures: dict[str, Any]) -> str:
    """A few lines for the console: where the bundle went, parity and INT8 figures."""
    p, q = figures["parity"], figures["int8"]
    out = [f"bundle written to {figures['bundle']} ({', '.join(figures['graphs'])}; scores with {figures['score_with']})",
           f"parity on {p['rows_source']}: model.onnx vs torch max abs diff {p['model_max_abs_diff']:.3g}"]
    if "raw.onnx" in figures["graphs"]:
        out.append(f"raw.onnx vs engine: logit {p['raw_logit_max_abs_diff']:.3g}, prediction {p['raw_prediction_max_abs_diff']:.3g}, "
                   f"differing ids {p['raw_id_mismatches']}")
    else:
        out.append(f"no raw graph: {p.get('raw_unavailable')}")
    out.append(f"parity ({TOLERANCE_TEXT}): {'yes' if p['ok'] else 'NO'}, worst row used {p['tolerance_used']:.3g} of the tolerance")
    if q:
        line = f"int8 ({q['chosen']}): size ratio {q['size_ratio']:.3f}"
        if q.get("validation_rows"):
            change = int8_change(q)
            line += f", {change}, max score change {q['max_score_change']:.3g} on {q['validation_rows']} validation rows"
        else:
            line += f" ({q['note']}; max score change on synthetic rows {q['max_score_change_synthetic']:.3g})"
        out.append(line)
    elif figures["validation_rows"] is None:
        out.append("no --data given: parity used synthetic rows")
    return "\n".join(out)
