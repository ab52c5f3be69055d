"""Charts: ECharts options built in Python, drawn in the browser by ``hutong.js``.

``chart(options, label=…)`` returns the markup of one chart: a ``<figure>`` whose ``data-chart``
attribute holds the options as JSON (no inline script, so a strict Content-Security-Policy works) and
whose fallback content is a plain table of the same numbers, so the page still says everything without
JavaScript and to a screen reader. The builders below return options dicts for the common shapes;
any ECharts option that is plain JSON (no functions) may be passed as well.

In a template: ``{{ chart(line_chart(days, {"扫码": counts}), label=_("每日扫码")) }}`` (both are
template globals), or build the markup in Python and pass it in the context.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from markupsafe import Markup

#: A palette with enough contrast on white for lines and bars (WCAG non-text contrast ≥ 3:1).
PALETTE = ["#0b6e4f", "#1d5fa8", "#b5461a", "#7a4fb0", "#8a6d00", "#0f7c8c", "#a8326e", "#4d5b66"]


def chart(options: Mapping[str, Any], *, label: str, height: int = 300, table: Markup | str | None = None,
          map_name: str | None = None) -> Markup:
    """The markup of one chart (a figure with the options as JSON and a fallback table).

    ``label`` is the chart's accessible name (shown as its caption); ``height`` in CSS pixels;
    ``table`` replaces the generated fallback table; ``map_name`` (``"jilin"``) loads that map first."""
    opts = dict(options)
    opts.setdefault("color", PALETTE)
    opts.setdefault("aria", {"enabled": True})
    data = orjson.dumps(opts, option=orjson.OPT_NON_STR_KEYS).decode()
    fallback = table if table is not None else fallback_table(opts)
    attrs = Markup(' data-map="{}"').format(map_name) if map_name else Markup("")
    height = max(120, min(int(height), 1200))
    return Markup(
        '<figure class="chart"><figcaption class="chart-label">{label}</figcaption>'
        '<div class="chart-canvas" data-chart="{data}" data-height="{height}"{attrs} role="img" aria-label="{label}">'
        '</div><div class="chart-fallback">{fallback}</div></figure>'
    ).format(label=label, data=data, height=height, attrs=attrs, fallback=fallback)


#: The fallback table shows at most this many rows (the latest ones for a time axis).
FALLBACK_ROWS = 120


def _e(v) -> str:
    return html.escape(str(v), quote=False)


def fallback_table(options: Mapping[str, Any]) -> Markup:
    """A table of the numbers of a category/line/bar/pie/map chart (what no-JS readers see).

    Built with plain string joins (it can have thousands of cells); every value is escaped."""
    series = [s for s in options.get("series") or [] if isinstance(s, dict)]
    if not series:
        return Markup("")
    cats: list = []
    for axis in ("xAxis", "yAxis"):
        a = options.get(axis)
        if isinstance(a, dict) and a.get("type") == "category":
            cats = list(a.get("data") or [])
            break
    if cats:
        first = max(0, len(cats) - FALLBACK_ROWS)
        head = "".join(f'<th scope="col">{_e(s.get("name", ""))}</th>' for s in series)
        rows = []
        for i in range(first, len(cats)):
            cells = "".join(f"<td>{_e(_cell(s.get('data'), i))}</td>" for s in series)
            rows.append(f'<tr><th scope="row">{_e(cats[i])}</th>{cells}</tr>')
        return Markup(f'<table class="table table-compact"><thead><tr><th></th>{head}</tr></thead>'
                      f'<tbody>{"".join(rows)}</tbody></table>')
    rows = []
    for s in series:
        for item in (s.get("data") or [])[:FALLBACK_ROWS]:
            if isinstance(item, dict):
                rows.append(f'<tr><th scope="row">{_e(item.get("name", ""))}</th><td>{_e(_fmt(item.get("value")))}</td></tr>')
            elif isinstance(item, (list, tuple)) and len(item) >= 2:
                rows.append(f'<tr><th scope="row">{_e(item[0])}</th><td>{_e(_fmt(item[1]))}</td></tr>')
    return Markup(f'<table class="table table-compact"><tbody>{"".join(rows)}</tbody></table>')


def _cell(data, i: int) -> str:
    if not isinstance(data, list) or i >= len(data):
        return ""
    v = data[i]
    if isinstance(v, dict):
        v = v.get("value")
    return _fmt(v)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return _fmt(v[-1]) if v else "–"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def line_chart(x: Sequence[Any], series: Mapping[str, Sequence[float | None]], *, unit: str = "",
               band: tuple[float | None, float | None] | None = None, area: bool = False) -> dict:
    """Lines over a category axis (days, visits). ``band`` shades a reference range (low, high)."""
    out = []
    for name, values in series.items():
        s: dict[str, Any] = {"name": name, "type": "line", "data": list(values), "connectNulls": True,
                             "symbolSize": 7, "showSymbol": True}
        if area:
            s["areaStyle"] = {"opacity": 0.15}
        out.append(s)
    if band is not None and out:
        lo, hi = band
        area_pts = [{"yAxis": lo if lo is not None else "min"}, {"yAxis": hi if hi is not None else "max"}]
        out[0]["markArea"] = {"silent": True, "itemStyle": {"color": "rgba(11,110,79,0.08)"}, "data": [area_pts]}
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0} if len(out) > 1 else {"show": False},
        "grid": {"left": 48, "right": 16, "top": 32 if len(out) > 1 else 16, "bottom": 32},
        "xAxis": {"type": "category", "data": list(x), "boundaryGap": False},
        "yAxis": {"type": "value", "name": unit, "scale": True},
        "series": out,
    }


def bar_chart(categories: Sequence[Any], series: Mapping[str, Sequence[float]], *, stacked: bool = False,
              horizontal: bool = False) -> dict:
    """Bars per category (one group per series; ``stacked`` stacks them)."""
    out = []
    for name, values in series.items():
        s: dict[str, Any] = {"name": name, "type": "bar", "data": list(values)}
        if stacked:
            s["stack"] = "total"
        out.append(s)
    cat_axis = {"type": "category", "data": list(categories)}
    val_axis = {"type": "value"}
    opts: dict[str, Any] = {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0} if len(out) > 1 else {"show": False},
        "grid": {"left": 110 if horizontal else 48, "right": 16, "top": 32 if len(out) > 1 else 16, "bottom": 32},
        "xAxis": val_axis if horizontal else cat_axis,
        "yAxis": cat_axis if horizontal else val_axis,
        "series": out,
    }
    return opts


def pie_chart(items: Mapping[str, float], *, donut: bool = True) -> dict:
    """Shares of a whole."""
    return {
        "tooltip": {"trigger": "item"},
        "legend": {"bottom": 0},
        "series": [{"type": "pie", "radius": ["45%", "70%"] if donut else "70%",
                    "data": [{"name": k, "value": v} for k, v in items.items()]}],
    }


def jilin_map(values: Mapping[str, float], *, name: str) -> dict:
    """A choropleth of Jilin's 9 cities (keys are the cities' Chinese names, e.g. ``长春市``)."""
    top = max([v for v in values.values() if v is not None] or [1])
    return {
        "tooltip": {"trigger": "item"},
        "visualMap": {"min": 0, "max": top, "left": 8, "bottom": 8, "calculable": True,
                      "inRange": {"color": ["#e6f2ec", "#0b6e4f"]}},
        "series": [{"name": name, "type": "map", "map": "jilin", "roam": False,
                    "label": {"show": True, "fontSize": 10},
                    "data": [{"name": k, "value": v} for k, v in values.items()]}],
    }


__all__ = ["chart", "line_chart", "bar_chart", "pie_chart", "jilin_map", "fallback_table", "PALETTE"]
