"""The frame every HTML page of spikescope shares: sections, plotly figures, and plotly.js beside the page."""
from __future__ import annotations

import html
from importlib import resources
from string import Template

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

PLOTLY_JS = "plotly.min.js"


def figure_block(div_id: str, fig: go.Figure, caption: str) -> str:
    """One figure (rendered by plotly.js in the browser) with its caption."""
    plot = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})
    return f'<div class="figure" id="figure-{div_id}">{plot}</div><p class="caption">{caption}</p>'


def page(heading: str, title: str, sections: list[tuple[str, str]], plotly_src: str = PLOTLY_JS) -> str:
    """A whole page: `sections` are `(title, HTML)` pairs; `plotly_src` is where the page loads plotly.js from
    (a path relative to the page; the report folder's own copy by default)."""
    body = "\n".join(f"<h2>{html.escape(name)}</h2>\n{content}" for name, content in sections)
    template = Template((resources.files("spikescope.report") / "template.html").read_text())
    return template.substitute(heading=html.escape(heading), title=html.escape(title), body=body,
                               plotly=html.escape(plotly_src))


def plotly_js() -> str:
    """The plotly.js bundle written next to a report (so the page works offline)."""
    return get_plotlyjs()
