"""A run's figures in words, the same in the CLI, the studio and the model card (no torch).

Test figures lead: the test rows were scored once, after every decision was taken on the
validation rows, so they are the honest estimate; each comes with its 95 % bootstrap interval.
The validation figure follows, named for what it did (chose the epoch).
"""

from __future__ import annotations

from typing import Any

from studio_core.common.metrics import METRIC_KEYS, format_metric, headline, metric_label


def interval_text(ci: Any, digits: int = 4) -> str:
    """``[low, high]`` as text, or '' when there is none."""
    return f"{ci[0]:.{digits}f}–{ci[1]:.{digits}f}" if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci else ""


def held_out_figure(m: dict[str, Any], metric: str | None = None) -> str:
    """e.g. ``AUC 0.9241 (95% interval 0.9190–0.9290)``, or why there is none."""
    metric = metric or headline(m.get("task", "binary"))
    if not m.get("test"):
        return "no test figure (the run has no test rows)" if "test" in m else "no test figure (trained before test splits)"
    iv = interval_text(m.get("test_ci", {}).get(metric))
    return f"{metric_label(metric)} {format_metric(metric, m['test'].get(metric))}" + (f" (95% interval {iv})" if iv else "")


def early_stop_text(m: dict[str, Any]) -> str:
    """", stopped early after 9 of 40 epochs" when early stopping cut training short, ", time
    budget ran out in epoch 3 of 40" when the wall-clock budget did, else ""."""
    planned = m.get("epochs_planned")
    if m.get("stopped_by_budget"):
        return f", time budget ran out in epoch {m.get('epochs_run')}" + (f" of {planned}" if planned else "")
    if not m.get("stopped_early"):
        return ""
    return f", stopped early after {m.get('epochs_run')} of {planned} epochs" if planned else ", stopped early"


def change_text(name: str, value: float | None, digits: int = 5) -> str:
    """"AUC change +0.00123", or "AUC unchanged to 5 decimals" rather than "-0.00000"."""
    if value is None:
        return f"{name} change unknown"
    if round(float(value), digits) == 0:
        return f"{name} unchanged to {digits} decimals"
    return f"{name} change {float(value):+.{digits}f}"


def int8_change(q: dict[str, Any]) -> str:
    """The INT8 graph's change of the validation headline: AUC, accuracy or RMSE."""
    if "auc_change" in q:
        return change_text("AUC", q["auc_change"])
    if "accuracy_change" in q:
        return change_text("accuracy", q["accuracy_change"], 4)
    return change_text("RMSE", q.get("rmse_change"), 4)


def result_summary(m: dict[str, Any]) -> str:
    """One sentence for a finished run: test figure first, then validation and speed."""
    task = m.get("task", "binary")
    main = headline(task)
    rows = f" on {m['n_test']:,} test rows" if m.get("n_test") else ""
    fitted = fitted_text(m, chose=True)
    if fitted is not None:  # a baseline: its validation figure, how it was fitted, how long it took
        return (f"Test {held_out_figure(m)}{rows} · validation {metric_label(main)} {format_metric(main, m.get(main))} · {fitted} · "
                f"{m.get('train_seconds', 0):.1f} s")
    stop = f"epoch {m.get('best_epoch')} of {m.get('epochs_run')}" + early_stop_text(m)
    return (f"Test {held_out_figure(m)}{rows} · validation {metric_label(main)} {format_metric(main, m.get(main))} chose {stop} · "
            f"{device_figures(m)}")


def device_figures(m: dict[str, Any]) -> str:
    """Where a run trained and how fast: "cpu, 98,000 rows/s", and on a GPU its batch and the
    most memory it allocated there ("cuda, 2,100,000 rows/s, batch 8,192, peak GPU memory 1.23 GiB")."""
    text = f"{m.get('device', 'cpu')}, {m.get('train_rows_per_s', 0):,.0f} rows/s"
    if m.get("device_peak_gib") is not None:
        text += (f", batch {m['batch_size']:,}" if m.get("batch_size") else "") + f", peak GPU memory {m['device_peak_gib']:.2f} GiB"
    return text


def run_label(number: int, status: str, m: dict[str, Any], interval: bool = False) -> str:
    """A run in a list: its number, and its test figure once done (else its status); with
    ``interval``, the test figure's 95 % interval too."""
    if status != "done" or not m:
        return f"run {number} · {status}"
    main = headline(m.get("task", "binary"))
    value = m.get("test", {}).get(main) if m.get("test") else m.get(main)
    where = "test" if m.get("test") else "validation"
    ci = interval_text((m.get("test_ci") or {}).get(main)) if interval and m.get("test") else ""
    return f"run {number} · {where} {metric_label(main)} {format_metric(main, value)}" + (f" [{ci}]" if ci else "")


def fitted_text(m: dict[str, Any], chose: bool = False) -> str | None:
    """How a baseline was fitted, in its own terms (None for a network run, told in epochs):
    LightGBM in trees, the constant not at all."""
    if m.get("kind") == "LightGBM":
        return f"{m.get('best_epoch')} trees, early-stopped on the validation rows" if not chose else f"{m.get('best_epoch')} trees"
    if m.get("kind") == "constant":
        return "nothing fitted: the training rows' share or mean"
    return None


def result_line(run_dir: Any, m: dict[str, Any]) -> str:
    """The last line of ``wdstudio train``: every test metric with its interval, then validation."""
    task = m["task"]
    main = headline(task)
    stop = fitted_text(m) or f"best epoch {m['best_epoch']} of {m['epochs_run']}" + early_stop_text(m)
    if m.get("test"):
        ci = m.get("test_ci", {})
        test = ", ".join(f"{k} {format_metric(k, m['test'].get(k))}" + (f" [{interval_text(ci.get(k))}]" if interval_text(ci.get(k)) else "")
                         for k in METRIC_KEYS[task])
        test = f"test ({m['n_test']:,} rows, 95% interval): {test}"
    else:
        test = "no test rows (data.test_fraction is 0, or the split column names none)"
    speed = "" if fitted_text(m) else f"{m['train_rows_per_s'] / 1000:.0f}k rows/s, "
    return (f"run written to {run_dir}: {test}; validation {main} {format_metric(main, m.get(main))} ({stop}); "
            f"{speed}{m['total_seconds']:.1f}s" + (f", {m['processes']} processes" if m["processes"] > 1 else ""))


def suggestion_lines(s: Any) -> list[str]:
    """What a suggestion chose, for the console: task, columns by role, crosses, and the
    ignored columns with their reasons (``suggest.Suggestion``)."""
    by_role: dict[str, list[Any]] = {}
    for r in s.roles:
        by_role.setdefault(r.role, []).append(r)
    lines = [f"task: {s.spec.data.task} ({s.task_reason})"]
    for role in ("numeric", "categorical", "text"):
        names = [r.name for r in by_role.get(role, [])]
        if names:
            lines.append(f"{role} ({len(names)}): {', '.join(names)}")
    crosses = [" x ".join(c.columns) for c in s.spec.features.crosses] if s.spec.features.crosses else []
    lines.append(f"crosses ({len(crosses)}): {', '.join(crosses) if crosses else 'none'}")
    for r in by_role.get("ignored", []):
        lines.append(f"ignored: {r.name} ({r.reason})")
    return lines + [f"note: {n}" for n in getattr(s, "notes", [])]
