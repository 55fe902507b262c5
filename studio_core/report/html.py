"""HTML building blocks of the offline report: charts as inline SVG, tables, a Markdown subset.

Charts are the same Altair charts the studio draws, rendered to SVG by vl-convert (Vega's own
renderer, bundled in a wheel: no browser, no network).  Inline SVG rather than the Vega
JavaScript runtime: the file stays small (no 900 KB of script per chart library), draws with
scripts disabled, prints, and fetches nothing -- the SVG's ``xmlns`` is a name, not a request.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

from studio_core.common.errors import StudioError

CSS = """
:root { --ink: #1d3557; --muted: #5c677d; --line: #d8dee9; --accent: #e76f51; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222; margin: 0;
       background: #f6f7fb; line-height: 1.45; }
header { background: var(--ink); color: #fff; padding: 28px 40px 22px; }
header h1 { margin: 0 0 6px; font-size: 26px; font-weight: 650; }
header p { margin: 0; color: #cfd8e6; }
main { max-width: 1180px; margin: 0 auto; padding: 10px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 24px; margin: 18px 0; }
h2 { color: var(--ink); font-size: 19px; margin: 0 0 10px; }
h3 { color: var(--ink); font-size: 15px; margin: 14px 0 6px; }
p.note { color: var(--muted); font-size: 13.5px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13.5px; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px 5px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure.chart { margin: 6px 0; overflow-x: auto; }
figure.chart svg { max-width: 100%; height: auto; }
.card { font-size: 14px; }
.card code, td code { background: #eef1f6; padding: 0 4px; border-radius: 4px; font-size: 12.5px; }
.kv td:first-child { color: var(--muted); padding-right: 24px; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; padding: 12px; }
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def svg(chart: Any, name: str) -> str:
    """An Altair chart as an inline SVG figure (``data-chart`` names it for tests and readers)."""
    try:
        import vl_convert as vlc
    except ImportError:
        raise StudioError("the report draws its charts with vl-convert: pip install vl-convert-python") from None
    import altair as alt

    try:  # long labels ("a x b = value") are cut at Vega's 180 px by default; the report has room
        chart = chart.configure_axis(labelLimit=320)
    except Exception:  # noqa: BLE001 - a chart that is configured already (a concat's parts): drawn as it is
        pass
    with alt.data_transformers.disable_max_rows():  # the data goes to the renderer, not into the file: only marks are drawn
        spec = chart.to_json()
    drawn = vlc.vegalite_to_svg(spec, vl_version=_vl_version())
    drawn = re.sub(r"^<\?xml[^>]*>\s*", "", drawn)
    return f'<figure class="chart" data-chart="{esc(name)}">{drawn}</figure>'


def _vl_version() -> str | None:
    """Altair's Vega-Lite version as vl-convert names it ("6.4"), so both read the spec alike
    (vl-convert's default when it does not ship that version)."""
    import altair as alt
    import vl_convert as vlc

    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"{major}.{minor}" if f"{major}.{minor}" in vlc.get_vegalite_versions() else None


def table(df: pd.DataFrame, numbers: int = 4) -> str:
    """A plain HTML table of ``df`` (floats rounded to ``numbers`` decimals, numbers right-aligned)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float):
                cells.append(f'<td class="num">{"" if pd.isna(v) else f"{v:.{numbers}f}"}</td>')
            elif isinstance(v, int) and not isinstance(v, bool):
                cells.append(f'<td class="num">{v:,}</td>')
            else:
                cells.append(f"<td>{esc('' if v is None else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def key_values(pairs: list[tuple[str, Any]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in pairs) + "</table>"


def _inline(text: str) -> str:
    """`code` and **bold** of one escaped line."""
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def markdown(md: str) -> str:
    """The Markdown the model card uses (#/## headings, "- " items, paragraphs, `code`, **bold**) as HTML."""
    out, in_list = [], False
    for line in md.splitlines():
        item = line.startswith("- ")
        if in_list and not item:
            out.append("</ul>")
            in_list = False
        if line.startswith("## "):
            out.append(f"<h3>{_inline(line[3:])}</h3>")
        elif line.startswith("# "):
            continue  # the card's title: the section heading says it
        elif item:
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_list:
        out.append("</ul>")
    return '<div class="card">' + "\n".join(out) + "</div>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def page(title: str, subtitle: str, sections: list[str], footer: str) -> str:
    """The whole document: one file, its style inline, no script, nothing fetched."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>{''.join(sections)}</main>"
            f"<footer>{esc(footer)}</footer></body></html>\n")
