"""The stakeholder report (issue 17): one self-contained HTML file built from real runs -- every
chart drawn as inline SVG with marks, nothing fetched from the network, the leaderboard's own
figures in it, a bundle from another run refused, and the CLI's errors as one line."""

from __future__ import annotations

import re

import pytest

from studio_core.cli.main import main
from studio_core.common.errors import StudioError
from studio_core.compare.leaderboard import leaderboard
from studio_core.report.build import build_report
from studio_core.report.shap_rows import shap_importance
from studio_core.runs import train as pipeline
from studio_core.runs.baselines import train_baseline
from studio_core.runs.folder import run_record

FETCH = re.compile(r"""(?:\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//)|url\(\s*["']?\s*(?:https?:)?//|@import|<script|<link|<iframe|<img""",
                   re.IGNORECASE)


def figures(report: str) -> dict[str, str]:
    """Each chart's inline SVG by its name."""
    return dict(re.findall(r'<figure class="chart" data-chart="([a-z_]+)">(.*?)</figure>', report, re.S))


def marks(svg: str) -> int:
    """How many drawn mark items the SVG holds (Vega writes each mark layer as a role-mark group)."""
    return sum(len(re.findall(r"<(?:path|rect|line|circle|text)\b", g)) for g in re.findall(r'<g class="mark-[a-z]+ role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S))


@pytest.fixture
def runs(tmp_path, small_spec):
    ws, spec = small_spec
    wd = pipeline.train(spec, ws, tmp_path / "wd").run_dir
    lgb = train_baseline("lightgbm", *run_record(wd), ws, tmp_path / "lgb").run_dir
    return ws, wd, lgb


def test_the_report_draws_every_chart_fetches_nothing_and_holds_the_leaderboards_figures(runs):
    ws, wd, lgb = runs
    shap = shap_importance(wd, ws, rows=40, background=20)
    report = build_report(wd, [lgb], shap=shap, names=["wd", "lgb"])
    drawn = figures(report)
    assert set(drawn) == {"leaderboard", "difference", "loss", "validation_metric", "roc", "pr", "calibration", "wide_weights", "shap_importance"}
    assert all(marks(svg) > 0 for svg in drawn.values()), {k: marks(v) for k, v in drawn.items()}
    assert FETCH.search(report) is None and "<script" not in report
    # the only http(s) strings are SVG namespace names, which no browser fetches
    assert set(re.findall(r"https?://[^\s\"'<>)]+", report)) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    board = leaderboard([wd, lgb], names=["wd", "lgb"])
    other = board.rows[1]
    lo, hi = other.diff_ci["auc"]
    assert f"{other.diff['auc']:+.4f}" in report and f"{lo:+.4f} – {hi:+.4f}" in report and f"{other.p_better:.3f}" in report
    assert "LightGBM" in report and "Model card" in report and "fingerprints" in report
    # the SHAP chart names the table's columns, largest first as in the importance frame
    importance = shap[0]
    shap_svg = drawn["shap_importance"]
    positions = [shap_svg.find(f">{c}<") for c in importance["feature"]]
    assert all(p > 0 for p in positions)


def test_a_baselines_report_says_which_sections_do_not_apply_and_a_foreign_bundle_is_refused(runs, tmp_path, small_spec):
    ws, wd, lgb = runs
    report = build_report(lgb, [wd])
    assert "Not a Wide &amp; Deep network: it has no wide weights." in report
    assert "No training curves" in report and "wide_weights" not in figures(report)
    assert marks(figures(report)["roc"]) > 0
    # a bundle exported from another run (another split seed) is refused rather than reported
    _, spec = small_spec
    other = type(spec).from_dict(spec.to_dict())
    other.data.split_seed = 7
    other_run = pipeline.train(other, ws, tmp_path / "other").run_dir
    from studio_core.export.bundle import export_bundle
    from studio_core.runs.store import load_run

    export_bundle(load_run(other_run), tmp_path / "other.zip")
    with pytest.raises(StudioError, match="exported from another run"):
        build_report(wd, bundle=tmp_path / "other.zip")


def test_wdstudio_report_writes_the_file_and_bad_input_is_one_error_line(runs, tmp_path, synthetic_csv, capsys):
    _ws, wd, lgb = runs
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--run", str(wd), "--compare", str(lgb), "--out", str(out)]) == 0
    assert out.is_file() and "report written to" in capsys.readouterr().out
    assert {"leaderboard", "roc"} <= set(figures(out.read_text(encoding="utf-8")))
    assert main(["report", "--run", str(wd), "--bundle", str(synthetic_csv), "--out", str(tmp_path / "r2.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a bundle" in err[0]
    assert main(["report", "--run", str(tmp_path), "--out", str(tmp_path / "r3.html")]) == 2
    assert "not a run directory" in capsys.readouterr().err
