"""The report opens in a real headless Chromium with the network cut off: every chart is drawn
(visible, with marks) and the page asks for nothing but its own file.  Screenshot saved."""

from __future__ import annotations

from browser import ARTIFACTS, CHROMIUM, require_chromium

require_chromium()


def test_the_report_opens_offline_in_chromium_with_every_chart_drawn(tmp_path, small_spec):
    from playwright.sync_api import sync_playwright

    from studio_core.report.build import build_report, write_report
    from studio_core.report.shap_rows import shap_importance
    from studio_core.runs import train as pipeline
    from studio_core.runs.baselines import train_baseline
    from studio_core.runs.folder import run_record

    ws, spec = small_spec
    wd = pipeline.train(spec, ws, tmp_path / "wd").run_dir
    const = train_baseline("constant", *run_record(wd), ws, tmp_path / "constant").run_dir
    lgb = train_baseline("lightgbm", *run_record(wd), ws, tmp_path / "lightgbm").run_dir
    path = write_report(tmp_path / "report.html", build_report(wd, [lgb, const], shap=shap_importance(wd, ws, rows=30, background=20)))
    ARTIFACTS.mkdir(exist_ok=True)
    asked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(r):  # the network is cut: anything but the file itself is refused (and noted)
                asked.append(r.request.url)
                (r.continue_() if r.request.url == path.as_uri() else r.abort())

            page.route("**/*", route)
            page.goto(path.as_uri())
            charts = page.locator("figure.chart")
            names = [charts.nth(i).get_attribute("data-chart") for i in range(charts.count())]
            assert {"leaderboard", "difference", "loss", "roc", "pr", "calibration", "wide_weights", "shap_importance"} <= set(names)
            for i, name in enumerate(names):
                chart = charts.nth(i)
                box = chart.locator("svg").first.bounding_box()
                assert box is not None and box["width"] > 150 and box["height"] > 60, name
                assert chart.locator("g.role-mark > *").count() > 0, name  # drawn marks, not an empty frame
            assert page.locator("section#leaderboard table tr").count() == 4  # heading + the run + LightGBM + the constant
            assert page.get_by_text("(the constant baseline) is in the table, not in the charts").count() == 1
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert asked == [path.as_uri()]
