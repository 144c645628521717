"""Embedding atlas: the K codebook vectors in two dimensions; pick one to see what it stands for."""

from __future__ import annotations

import gradio as gr

from .common import MODEL, Shared, callback, explain, inline_image, picture_file, show_many, slot_at, tiled
from .figures import atlas

TEXT = r"""
Each point is one codebook vector $e_k \in \mathbb{R}^D$, projected to two dimensions (UMAP keeps
neighbours together; PCA keeps the directions of largest spread). Bigger points are used more on the
held-out split. Codes that sit close together are close in $\mathbb{R}^D$, so the quantiser can swap
one for another at little cost. **Click a point** (or type a code) to see what it paints, the held-out
patches it stands for, and its nearest codes.
"""

NEAREST_PIXELS = 48
PROJECTION_NAMES = {"umap": "UMAP", "pca": "PCA"}
COLOUR_BY = {"dominant class": "class", "alive / dead": "alive"}


def projections(shared: Shared, choice: str) -> gr.Radio:
    names = list(shared.explorer(choice).analysis.projections)
    options = [(PROJECTION_NAMES.get(n, n), n) for n in sorted(names, key=lambda n: n != "umap")]
    return gr.Radio(choices=options, value=options[0][1])


def atlas_figure(shared: Shared, choice: str, projection: str, colour_by: str, code: float | None) -> object:
    explorer = shared.explorer(choice)
    usage = explorer.usage_summary()["counts"]
    colour = COLOUR_BY.get(colour_by, "class")
    if colour == "class" and not explorer.class_names:
        colour = "alive"
    selected = explorer.check_code(code) if code is not None else None
    xy = explorer.projection(projection).tolist()
    return atlas(xy, usage, explorer.dominant_class(), colour, explorer.class_names, selected)


def code_details(shared: Shared, choice: str, code: float | None) -> tuple:
    explorer = shared.explorer(choice)
    info = explorer.code(explorer.check_code(code))
    names = explorer.class_names
    shares = ", ".join(f"{names[c]}: {n}" for c, n in enumerate(info.usage_by_class) if n > 0 and c < len(names))
    text = (
        f"### code {info.code}\n{info.usage} held-out uses ({100 * info.usage_fraction:.2f}% of latents)"
        + (f"; by class {shares}" if shares else "")
        + ("\n\n**dead code**: no held-out latent chooses it" if info.usage == 0 else "")
    )
    exemplars = (
        inline_image(tiled(info.exemplars, columns=4), "held-out patches", "nearest held-out patches")
        if len(info.exemplars)
        else ""
    )
    strip = show_many(info.nearest_tiles, columns=len(info.nearest), pixels=NEAREST_PIXELS)
    text += "\n\n**nearest codes**, left to right: " + ", ".join(str(k) for k in info.nearest)
    tile = inline_image(info.tile, f"code {info.code}", "what it paints (mean decoded window)")
    return text, tile, exemplars, picture_file(strip), info.nearest


def pick_nearest(shared: Shared, choice: str, nearest: list[int] | None, evt: gr.SelectData) -> int:
    """A click on one of the nearest codes makes it the selected code."""
    if not nearest:
        return gr.skip()
    side = shared.explorer(choice).analysis.tiles.shape[-1]
    slot = slot_at(*evt.index, side, len(nearest), NEAREST_PIXELS)
    return nearest[slot] if 0 <= slot < len(nearest) else gr.skip()


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    with gr.Row():
        projection = gr.Radio([("UMAP", "umap"), ("PCA", "pca")], value="umap", label="projection")
        colour_by = gr.Radio(list(COLOUR_BY), value="dominant class", label="colour")
        code = gr.Number(label="code", precision=0, minimum=0, value=0, elem_id="atlas-code")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="codebook atlas", elem_id="atlas-plot")
        with gr.Column(scale=2):
            details = gr.Markdown(elem_id="atlas-details")
            with gr.Row():
                tile = gr.HTML(elem_id="atlas-tile")
                exemplars = gr.HTML(elem_id="atlas-exemplars")
            nearest = gr.Image(
                label="nearest codes (click one)", format="png", interactive=False, elem_id="atlas-nearest"
            )
            nearest_codes = gr.State(None)

    figure_inputs = [picker, projection, colour_by, code]
    draw = callback(atlas_figure, shared)
    details_outputs = [details, tile, exemplars, nearest, nearest_codes]
    shared.on_checkpoint(callback(projections, shared), picker, projection).then(
        draw, figure_inputs, plot, api_visibility="private", concurrency_id=MODEL
    ).then(
        callback(code_details, shared), [picker, code], details_outputs, api_visibility="private", concurrency_id=MODEL
    )
    projection.change(draw, figure_inputs, plot, api_name="atlas", concurrency_id=MODEL)
    colour_by.change(draw, figure_inputs, plot, api_visibility="private", concurrency_id=MODEL)
    code.change(
        callback(code_details, shared), [picker, code], details_outputs, api_name="atlas_select", concurrency_id=MODEL
    )
    code.change(draw, figure_inputs, plot, api_visibility="private", concurrency_id=MODEL)
    nearest.select(
        callback(pick_nearest, shared), [picker, nearest_codes], code, api_visibility="private", concurrency_id=MODEL
    )
