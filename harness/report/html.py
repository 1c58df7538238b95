"""Self-contained HTML: inline CSS, figures as base64 ``data:`` URIs, no external resource of any kind.

A small inline script marks every ``img[data-figure]`` that the browser decoded (``data-ok="1"``) and writes the
tally into ``#render-check`` so a headless browser can verify the page (``chromium --dump-dom``).
"""

from __future__ import annotations

import base64
import html
from typing import Any, Iterable

import pandas as pd

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;color:#1b2631}
header{background:#1b2631;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c7d0d9;font-size:13px}
main{padding:18px 28px;max-width:1320px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:14px 20px;margin:0 0 18px}
h2{font-size:17px;margin:4px 0 10px;border-bottom:2px solid #e5e8e8;padding-bottom:4px}
h3{font-size:14px;margin:12px 0 6px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:12px}
.card{border:1px solid #e5e8e8;border-radius:6px;padding:8px 12px}
.card h3{margin-top:2px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0;font-size:13px}
dt{color:#566573}dd{margin:0;overflow-wrap:break-word}
.num{white-space:nowrap}
#decision{border-left:6px solid #1b2631}#decision h3{margin-top:14px}
#decision-outcomes th{background:#fff;font-weight:600;max-width:420px}
.insufficient-text{color:#b9770e}.not-tested{color:#7b241c}.not-measured{color:#7f8c8d}
tr.chosen td{background:#eef6ee}
dl.glossary{font-size:12px}
table{border-collapse:collapse;font-size:12px;margin:4px 0}
th,td{border:1px solid #d5d8dc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eaf2f8}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.pass{background:#1e8449}.fail{background:#c0392b}.insufficient{background:#b9770e}.na{background:#7f8c8d}
figure{margin:8px 0 16px;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #e5e8e8}
figcaption{font-size:12px;color:#566573;max-width:760px}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
.tile{border:1px solid #d5d8dc;border-radius:6px;padding:6px;width:190px;font-size:11px;background:#fbfcfc}
.tile img{display:block;margin:0 auto 4px;image-rendering:auto}
.tile.err{border:2px solid #c0392b}
.note{font-size:12px;color:#7b241c}
.scroll{max-height:420px;overflow:auto}
details summary{cursor:pointer;font-size:13px}
"""

CHECK_JS = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img[data-figure]');
  var ok = 0;
  imgs.forEach(function (im) { var good = im.complete && im.naturalWidth > 0; im.setAttribute('data-ok', good ? '1' : '0');
    if (good) { ok += 1; } });
  var c = document.getElementById('render-check');
  c.setAttribute('data-figures-total', String(imgs.length)); c.setAttribute('data-figures-ok', String(ok));
  c.textContent = ok + '/' + imgs.length + ' figures rendered';
});
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(fig_id: str, png: bytes, caption: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return (f'<figure id="fig-{esc(fig_id)}"><img data-figure="{esc(fig_id)}" alt="{esc(fig_id)}"{w} '
            f'src="{data_uri(png)}"><figcaption>{caption}</figcaption></figure>')


def table(df: pd.DataFrame, table_id: str | None = None, float_fmt: str = "{:.4g}", max_rows: int | None = None) -> str:
    if df is None or df.empty:
        return '<p class="note">(empty)</p>'
    d = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in d.columns)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return esc(float_fmt.format(v)) if v == v else ""
        return esc(v)

    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in d.itertuples(index=False))
    more = "" if max_rows is None or len(df) <= max_rows else f'<p class="note">{len(df) - max_rows} more rows in the CSV</p>'
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def dl(items: Iterable[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def badge(verdict: str) -> str:
    cls = {"pass": "pass", "fail": "fail", "insufficient evidence": "insufficient"}.get(verdict, "na")
    return f'<span class="badge {cls}">{esc(verdict)}</span>'


def page(title: str, subtitle: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{esc(title)}</h1><p>{subtitle}</p></header><main>"
            + "".join(sections)
            + '<p id="render-check" data-figures-total="?" data-figures-ok="?"></p>'
            + f"</main><script>{CHECK_JS}</script></body></html>")
