"""Plotly figures the pages show; each takes plain lists or arrays and returns a Figure.

Each figure is written as plain dicts and left unvalidated: plotly checks every property of a
validated figure against its schema, which took longer than the model takes to answer. These
dicts are fixed here, and the browser draws the same.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

# Okabe and Ito's colour-blind-safe qualitative palette, extended to ten with Tol's wine and olive;
# each class also has a marker shape of its own, a second cue beside its colour.
CLASS_COLOURS = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
    "#D55E00", "#F0E442", "#000000", "#882255", "#999933",
]  # fmt: skip
CLASS_SYMBOLS = [
    "circle", "square", "diamond", "triangle-up", "triangle-down",
    "pentagon", "hexagon", "star", "hourglass", "cross",
]  # fmt: skip
UNUSED_COLOUR = "#bbbbbb"
LEGEND_LINE = 18  # characters of a legend entry to a line: a longer class name wraps
# The atlas's legend column, as a share of the figure's width: enough for "class 9" and its marker,
# widened for the longest line of longer names (about 7 px a character at its font, in a figure about
# 700 px wide at 1440 px) up to a limit
LEGEND_SHARE, MAX_LEGEND_SHARE, LEGEND_PIXELS, FIGURE_PIXELS = 0.16, 0.3, (40, 7.5), 700
AXES_NOTE = {  # under the atlas: what its axes mean
    "UMAP": "UMAP axes have no units: only which codes lie near each other means something",
    "PCA": "PCA axes: the codebook's two directions of largest spread, with no units to read off",
}
EMPTY_CELL = "#d9d9d9"  # a grid cell with no code yet (the sampler's player greys it the same)
MARGIN = dict(l=40, r=10, t=40, b=40)


def _figure(traces: list[dict[str, Any]], **layout: Any) -> go.Figure:
    """A Figure of plain trace dicts and layout settings, unvalidated (see the module's note)."""
    if isinstance(layout.get("title"), str):
        layout["title"] = {"text": layout["title"]}
    return go.Figure(data=traces, layout=layout, _validate=False)


def code_grid(
    indices: Sequence[Sequence[int]],
    title: str = "codes",
    highlight: tuple[int, int] | None = None,
    marked: Sequence[tuple[int, int]] = (),
) -> go.Figure:
    """The grid of code indices as a heatmap with each number written in its cell (row 0 at the top);
    the `highlight` cell and every `marked` (row, col) cell outlined.
    A cell below 0 (no code yet) is left empty: grey, with no number, off the colour scale."""
    z = [[k if k >= 0 else None for k in row] for row in indices]  # Plotly leaves a None cell unpainted
    shapes = []
    cells = [*marked, *([highlight] if highlight is not None else [])]
    for row, col in dict.fromkeys(tuple(cell) for cell in cells):  # each cell outlined once
        box = dict(x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5)
        shapes.append(dict(type="rect", **box, line={"color": "red", "width": 3}))
    heatmap = dict(
        type="heatmap",
        z=z,
        text=[["" if k is None else str(k) for k in row] for row in z],
        texttemplate="%{text}",
        textfont={"size": 12},
        colorscale="Viridis",
        showscale=False,
        hoverongaps=False,
        hovertemplate="row %{y}, column %{x}: code %{z}<extra></extra>",
    )
    return _figure(
        [heatmap],
        title={"text": title, "y": 0.985, "yanchor": "top"},  # above the column numbers, whatever the font size
        margin=dict(l=50, r=10, t=100, b=10),
        height=390,
        shapes=shapes,
        plot_bgcolor=EMPTY_CELL,
        yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain", dtick=1, showgrid=False,
                   zeroline=False, title={"text": "row"}),
        xaxis=dict(constrain="domain", dtick=1, side="top", showgrid=False, zeroline=False,
                   title={"text": "column", "standoff": 4}),
    )  # fmt: skip


def usage_bars(counts_sorted: Sequence[int], codes_sorted: Sequence[int]) -> go.Figure:
    """Code counts, most used first; dead codes sit at the right end at zero."""
    bars = dict(
        type="bar",
        x=list(range(len(counts_sorted))),
        y=list(counts_sorted),
        customdata=list(codes_sorted),
        marker={"color": ["#4e79a7" if c > 0 else "#e15759" for c in counts_sorted]},
        hovertemplate="code %{customdata}: %{y} uses<extra></extra>",
    )
    return _figure(
        [bars],
        title="Held-out uses of each code, most used first",
        xaxis={"title": {"text": "codes by rank"}},
        yaxis={"title": {"text": "uses"}},
        margin=MARGIN,
        height=320,
        bargap=0,
    )


def usage_by_class(shares: Sequence[Sequence[float]], codes: Sequence[int], class_names: Sequence[str]) -> go.Figure:
    """For each code (a column, grouped by the class it leans to), the share of its uses by class (rows)."""
    z = [[row[c] for row in shares] for c in range(len(class_names))]  # (classes, codes)
    peak = max((v for row in z for v in row), default=1.0)
    heatmap = dict(
        type="heatmap",
        z=z,
        x=[str(c) for c in codes],
        y=[str(name) for name in class_names],
        zmin=0,
        zmax=peak,
        colorscale=[[0, "#ffffff"], [0.25, "#c6dbef"], [0.6, "#4292c6"], [1, "#08306b"]],
        xgap=1,
        ygap=1,
        hovertemplate="code %{x}: %{z:.0%} of its uses are class %{y}<extra></extra>",
        colorbar={"title": {"text": "share of the<br>code's uses"}, "tickformat": ".0%"},
    )
    return _figure(
        [heatmap],
        title="The codes each class leans on: who uses each code",
        xaxis={"type": "category", "title": {"text": "code number (grouped by the class using it most)"},
               "tickangle": -90, "tickfont": {"size": 11}},
        yaxis={"type": "category", "title": {"text": "class"}, "autorange": "reversed", "automargin": True},
        margin=dict(l=60, r=10, t=50, b=80),
        height=380,
        plot_bgcolor="#ffffff",
    )  # fmt: skip


def curves(
    history: Sequence[dict[str, Any]],
    keys: Sequence[str],
    title: str,
    num_embeddings: int | None = None,
    y_title: str = "",
) -> go.Figure:
    """Training curves: one line per metric against the step; K drawn as a dashed ceiling when given."""
    steps = [row["step"] for row in history]
    lines = []
    for key in keys:
        ys = [row.get(key) for row in history]
        if any(y is not None for y in ys):
            lines.append(dict(type="scatter", x=steps, y=ys, mode="lines", name=key.replace("_", " ")))
    shapes, notes = [], []
    if num_embeddings:
        across = dict(xref="x domain", yref="y")
        shapes.append(
            dict(type="line", **across, x0=0, x1=1, y0=num_embeddings, y1=num_embeddings,
                 line={"dash": "dash", "color": "grey"})
        )  # fmt: skip
        notes.append(
            dict(**across, x=1, y=num_embeddings, xanchor="right", yanchor="bottom",
                 text=f"K = {num_embeddings}", showarrow=False)
        )  # fmt: skip
    return _figure(
        lines,
        title=title,
        xaxis={"title": {"text": "training step"}},
        yaxis={"title": {"text": y_title or " / ".join(key.replace("_", " ") for key in keys)}},
        margin=dict(MARGIN, l=60),
        height=320,
        legend={"orientation": "h", "y": -0.3},
        shapes=shapes,
        annotations=notes,
    )


def note(text: str, height: int = 320) -> go.Figure:
    """An empty chart that says why it is empty."""
    words = dict(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 15})
    hidden = {"visible": False}
    clear = {"plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)"}
    return _figure([], annotations=[words], xaxis=hidden, yaxis=hidden, height=height, margin=MARGIN, **clear)


def atlas(
    xy: Sequence[Sequence[float]],
    usage: Sequence[int],
    colour_of: Sequence[int],
    colour_by: str,
    class_names: Sequence[str],
    selected: int | None = None,
    projection: str = "PCA",
) -> go.Figure:
    """The codebook as points: area by held-out uses (with a key), colour and shape by dominant class or by
    alive/dead, one trace per group; axes named after the projection, which gives them no units."""
    peak = max(max(usage), 1)
    groups: dict[str, list[int]] = {}
    for code, c in enumerate(colour_of):
        if colour_by == "class":
            name = f"class {class_names[c]}" if 0 <= c < len(class_names) else "unused"
        else:
            name = "alive" if usage[code] > 0 else "dead"
        groups.setdefault(name, []).append(code)
    ordered = _in_legend_order(groups, class_names)
    styles = _group_styles(class_names)
    points = [_atlas_group(name, codes, xy, usage, peak, styles[name]) for name, codes in ordered]
    side = _legend_share([name for name, _ in ordered])
    notes = [
        dict(xref="paper", yref="paper", x=0, y=-0.09, xanchor="left", yanchor="top", showarrow=False,
             text=AXES_NOTE.get(projection, f"{projection} axes have no units"),
             font={"size": 13, "color": "#555555"}),
        dict(xref="paper", yref="paper", x=1 - side, y=0.36, xanchor="left", yanchor="bottom", showarrow=False,
             align="left", text="<b>point size</b>:<br>held-out uses", font={"size": 13}),
    ]  # fmt: skip
    if selected is not None:
        points.append(
            dict(type="scatter", x=[xy[selected][0]], y=[xy[selected][1]], mode="markers", name=f"code {selected}",
                 showlegend=False, hoverinfo="skip",
                 marker={"size": 30, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "black"}})
        )  # fmt: skip
        notes.append(
            dict(x=xy[selected][0], y=xy[selected][1], text=f"<b>code {selected}</b>", showarrow=True, arrowhead=0,
                 ax=40, ay=-40, font={"size": 15}, bgcolor="rgba(255,255,255,0.85)")
        )  # fmt: skip
    points.append(_size_key(peak))
    axis = {"showticklabels": False, "zeroline": False, "showgrid": False, "showline": True, "linecolor": "#999999"}
    hidden = {"visible": False, "fixedrange": True}
    return _figure(
        points,
        title=f"The {len(usage)} codes of the codebook in two dimensions ({projection})",
        margin=dict(l=40, r=10, t=50, b=70),
        height=600,
        legend={"itemsizing": "constant", "x": 1 - side, "xanchor": "left", "y": 1, "yanchor": "top",
                "title": {"text": "dominant class" if colour_by == "class" else "held-out use"},
                "font": {"size": 13}},
        clickmode="event",
        hovermode="closest",
        annotations=notes,
        plot_bgcolor="#ffffff",
        xaxis=axis | {"domain": [0, 0.96 - side], "title": {"text": f"{projection} 1"}},
        yaxis=axis | {"title": {"text": f"{projection} 2"}},
        xaxis2=hidden | {"domain": [1 - side, 1], "anchor": "y2", "range": [-0.5, 3]},
        yaxis2=hidden | {"domain": [0.02, 0.34], "anchor": "x2", "range": [-0.6, 2.6]},
    )  # fmt: skip


def legend_lines(name: str, width: int = LEGEND_LINE) -> list[str]:
    """A legend entry broken into lines of at most `width` characters, at spaces (a longer word keeps its line)."""
    lines: list[str] = []
    for word in name.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _legend_share(names: Sequence[str]) -> float:
    """The share of the atlas's width its legend column takes: its longest line (and marker) fits."""
    longest = max((len(line) for name in names for line in legend_lines(name)), default=0)
    marker, per_character = LEGEND_PIXELS
    return min(MAX_LEGEND_SHARE, max(LEGEND_SHARE, (marker + per_character * longest) / FIGURE_PIXELS))


def _marker_size(uses: float, peak: float) -> float:
    """Point diameter in pixels: its area grows with the code's held-out uses."""
    return 6 + 22 * (uses / peak) ** 0.5


def _atlas_group(
    name: str, codes: list[int], xy: Sequence[Sequence[float]], usage: Sequence[int], peak: int, style: tuple[str, str]
) -> dict[str, Any]:
    colour, symbol = style
    return dict(
        type="scatter",
        x=[xy[k][0] for k in codes],
        y=[xy[k][1] for k in codes],
        mode="markers",
        name="<br>".join(html.escape(line) for line in legend_lines(name)),  # Plotly reads names as HTML
        customdata=codes,
        marker={
            "size": [_marker_size(usage[k], peak) for k in codes],
            "color": colour,
            "symbol": symbol,
            "opacity": 0.85,
            "line": {"width": 0.6, "color": "#333333"},
        },
        text=[f"{usage[k]} held-out uses" for k in codes],
        hovertemplate=f"code %{{customdata}} ({html.escape(name)})<br>%{{text}}<extra></extra>",
    )


def _size_key(peak: int) -> dict[str, Any]:
    """A key for the point sizes, drawn at their true size in a small plot of its own beside the legend."""
    values = sorted({_round_uses(peak / 16), _round_uses(peak / 4), _round_uses(peak)} - {0})
    return dict(
        type="scatter", xaxis="x2", yaxis="y2", x=[0] * len(values), y=list(range(len(values))),
        mode="markers+text", text=[f"{v} uses" for v in values], textposition="middle right",
        marker={"size": [_marker_size(v, peak) for v in values], "color": "#9a9a9a",
                "line": {"width": 0.6, "color": "#333333"}},
        showlegend=False, hoverinfo="skip", cliponaxis=False,
    )  # fmt: skip


def _round_uses(value: float) -> int:
    """A count rounded to one significant figure (430 -> 400, 27 -> 30), for the size key."""
    if value < 1:
        return 0
    step = 10 ** (len(str(int(value))) - 1)
    return max(1, round(value / step) * step)


def _in_legend_order(groups: dict[str, list[int]], class_names: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Alive before dead; the classes in their own order, then the unused codes."""
    order = ["alive", "dead", *(f"class {name}" for name in class_names), "unused"]
    return [(name, groups[name]) for name in order if name in groups]


def _group_styles(class_names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The colour and marker shape of each group of points: each class's by its place in the list."""
    styles = {"unused": (UNUSED_COLOUR, "circle-open"), "alive": ("#0072B2", "circle"), "dead": ("#D55E00", "x")}
    for index, name in enumerate(class_names):
        styles[f"class {name}"] = CLASS_COLOURS[index % len(CLASS_COLOURS)], CLASS_SYMBOLS[index % len(CLASS_SYMBOLS)]
    return styles
