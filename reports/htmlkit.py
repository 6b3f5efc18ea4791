"""Small HTML pieces every report section uses: the page's CSS, escaping, number formats, tables."""

from __future__ import annotations

import html
import math

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;background:#fff}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0;display:inline-block;width:48%;vertical-align:top}
figure img{width:100%;border:1px solid #eee}figcaption{font-size:.8em;color:#555}
.headline{background:#f6f9ff;border-left:4px solid #36c;padding:.6em 1em;margin:1em 0}
.warn{background:#fff6f0;border-left:4px solid #c63;padding:.5em 1em}
.ck{font-weight:600;color:#36c}code,pre{font-size:.85em;background:#f7f7f7}
pre{padding:.5em;overflow-x:auto;white-space:pre-wrap}details summary{cursor:pointer}
@media(max-width:800px){figure{width:100%}}
"""


def esc(x) -> str:
    return html.escape("" if x is None else str(x))


def pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def num(v, fmt="{:,.0f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    try:
        return fmt.format(v)
    except (TypeError, ValueError):
        return esc(v)


def times(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(v):
        return "∞x (no size suffices)"
    return "> 1e6x" if v > 1e6 else f"{v:.3g}x"


def table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
