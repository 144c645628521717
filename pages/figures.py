"""Plotly figures the pages show; each takes plain lists or arrays and returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

CLASS_COLOURS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]  # fmt: skip
UNUSED_COLOUR = "#d0d0d0"
MARGIN = dict(l=40, r=10, t=40, b=40)


def code_grid(
    indices: Sequence[Sequence[int]], title: str = "codes", highlight: tuple[int, int] | None = None
) -> go.Figure:
    """The grid of code indices as a heatmap with each number written in its cell (row 0 at the top)."""
    figure = go.Figure(
        go.Heatmap(
            z=indices,
            text=indices,
            texttemplate="%{text}",
            textfont={"size": 11},
            colorscale="Viridis",
            showscale=False,
            hovertemplate="row %{y}, col %{x}: code %{z}<extra></extra>",
        )
    )
    if highlight is not None:
        row, col = highlight
        figure.add_shape(
            type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5, line={"color": "red", "width": 3}
        )
    figure.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", dtick=1)
    figure.update_xaxes(constrain="domain", dtick=1, side="top")
    figure.update_layout(title=title, margin=dict(l=30, r=10, t=60, b=10), height=360)
    return figure


def usage_bars(counts_sorted: Sequence[int], codes_sorted: Sequence[int]) -> go.Figure:
    """Code counts, most used first; dead codes sit at the right end at zero."""
    figure = go.Figure(
        go.Bar(
            x=list(range(len(counts_sorted))),
            y=counts_sorted,
            customdata=codes_sorted,
            marker_color=["#4e79a7" if c > 0 else "#e15759" for c in counts_sorted],
            hovertemplate="code %{customdata}: %{y} uses<extra></extra>",
        )
    )
    figure.update_layout(
        title="Held-out uses of each code, most used first",
        xaxis_title="codes by rank",
        yaxis_title="uses",
        margin=MARGIN,
        height=320,
        bargap=0,
    )
    return figure


def usage_by_class(fractions: Sequence[Sequence[float]], codes: Sequence[int], class_names: Sequence[str]) -> go.Figure:
    """Share of each class's latents that each code takes (codes ordered by overall usage)."""
    figure = go.Figure(
        go.Heatmap(
            z=fractions,
            x=[str(c) for c in codes],
            y=list(class_names),
            colorscale="Blues",
            hovertemplate="class %{y}, code %{x}: %{z:.2%} of its latents<extra></extra>",
            colorbar={"title": "share"},
        )
    )
    figure.update_xaxes(type="category", showticklabels=False, title="codes by overall usage")
    figure.update_layout(title="Which codes each class uses", margin=MARGIN, height=320)
    return figure


def curves(
    history: Sequence[dict[str, Any]], keys: Sequence[str], title: str, num_embeddings: int | None = None
) -> go.Figure:
    """Training curves: one line per metric against the step; K drawn as a dashed ceiling when given."""
    figure = go.Figure()
    steps = [row["step"] for row in history]
    for key in keys:
        ys = [row.get(key) for row in history]
        if any(y is not None for y in ys):
            figure.add_trace(go.Scatter(x=steps, y=ys, mode="lines", name=key.replace("_", " ")))
    if num_embeddings:
        figure.add_hline(y=num_embeddings, line_dash="dash", line_color="grey", annotation_text=f"K = {num_embeddings}")
    figure.update_layout(
        title=title, xaxis_title="step", margin=MARGIN, height=320, legend={"orientation": "h", "y": -0.25}
    )
    return figure


def atlas(
    xy: Sequence[Sequence[float]],
    usage: Sequence[int],
    colour_of: Sequence[int],
    colour_by: str,
    class_names: Sequence[str],
    selected: int | None = None,
) -> go.Figure:
    """The codebook as points: size by usage, colour by dominant class or by alive/dead; one trace per colour."""
    peak = max(max(usage), 1)
    groups: dict[str, list[int]] = {}
    for code, c in enumerate(colour_of):
        if colour_by == "class":
            name = f"class {class_names[c]}" if 0 <= c < len(class_names) else "unused"
        else:
            name = "alive" if usage[code] > 0 else "dead"
        groups.setdefault(name, []).append(code)
    figure = go.Figure()
    for name, codes in sorted(groups.items()):
        colour = _group_colour(name, class_names)
        figure.add_trace(
            go.Scatter(
                x=[xy[k][0] for k in codes],
                y=[xy[k][1] for k in codes],
                mode="markers",
                name=name,
                customdata=codes,
                marker={
                    "size": [5 + 20 * (usage[k] / peak) ** 0.5 for k in codes],
                    "color": colour,
                    "opacity": 0.8,
                    "line": {"width": 0.5, "color": "white"},
                },
                text=[f"{usage[k]} uses" for k in codes],
                hovertemplate="code %{customdata}<br>%{text}<extra></extra>",
            )
        )
    if selected is not None:
        figure.add_trace(
            go.Scatter(
                x=[xy[selected][0]],
                y=[xy[selected][1]],
                mode="markers",
                name=f"code {selected}",
                marker={"size": 26, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "black"}},
                hoverinfo="skip",
            )
        )
    figure.update_layout(margin=MARGIN, height=560, legend={"itemsizing": "constant"}, clickmode="event")
    figure.update_xaxes(showticklabels=False, zeroline=False)
    figure.update_yaxes(showticklabels=False, zeroline=False, scaleanchor="x")
    return figure


def _group_colour(name: str, class_names: Sequence[str]) -> str:
    if name in ("unused", "dead"):
        return "#e15759" if name == "dead" else UNUSED_COLOUR
    if name == "alive":
        return "#4e79a7"
    index = list(class_names).index(name.removeprefix("class "))
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def top_codes(codes: Sequence[int], probs: Sequence[float], title: str) -> go.Figure:
    """The prior's most likely codes at one step, as horizontal bars."""
    figure = go.Figure(go.Bar(x=list(probs), y=[f"code {c}" for c in codes], orientation="h", marker_color="#59a14f"))
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title=title, xaxis_title="p(code | codes before it)", margin=MARGIN, height=260)
    return figure
