"""Embedding atlas: the K codebook vectors in two dimensions; pick one to see what it stands for."""

from __future__ import annotations

import gradio as gr

from vqvae.images import enlarge, labelled_tiles

from .common import (
    MODEL,
    Shared,
    callback,
    clickable_codes,
    code_clicked,
    display_scale,
    explain,
    inline_image,
    picture_file,
    scale_at_least,
    show_many,
)
from .figures import atlas

FOLLOWS_LEVEL = True  # shows one grid of codes: a VQ-VAE-2's chosen level
TEXT = r"""
Each point is one codebook vector $e_k \in \mathbb{R}^D$, projected to two dimensions (UMAP keeps
neighbours together; PCA keeps the directions of largest spread). Bigger points are used more on the
held-out split; colour and shape give the class that uses a code most. Codes that sit close together are
close in $\mathbb{R}^D$, so the quantiser can swap one for another at little cost. **Click a point** (or
type a code number) to see what it paints, the held-out patches it stands for, and its nearest codes.
"""

TILE_PIXELS = 120  # the chosen code's tile on screen
PATCH_PIXELS = 72  # each held-out patch, and each nearest code's tile, at least this many pixels
EXEMPLAR_COLUMNS = NEAREST_COLUMNS = 4
PROJECTION_NAMES = {"umap": "UMAP", "pca": "PCA"}
COLOUR_BY = {"dominant class": "class", "alive / dead": "alive"}


def open_atlas(shared: Shared, choice: str, level: str | None = None) -> tuple:
    """Fit the page to the chosen checkpoint: its projections (and why UMAP is missing), K, and a code
    worth opening on (a busy one whose tile has the most contrast, not the black background code)."""
    explorer = shared.explorer(choice, level)
    names = sorted(explorer.analysis.projections, key=lambda name: name != "umap")
    options = [(PROJECTION_NAMES.get(name, name), name) for name in names]
    last = explorer.num_embeddings - 1
    why = (
        ""
        if "umap" in names
        else f"**PCA only**: UMAP was not computed for this checkpoint (it was analysed without it). To add it, "
        f"run `python -m vqvae analyse {choice}` where the app runs (it needs umap-learn and at least 8 codes)."
    )
    return (
        gr.Radio(choices=options, value=options[0][1]),
        gr.Markdown(why, visible=bool(why)),
        gr.Number(value=explorer.telling_code(), maximum=last, label=f"code number (0 to {last})"),
        choice,
    )


def atlas_figure(
    shared: Shared, choice: str, projection: str, colour_by: str, code: float | None, level: str | None = None
) -> object:
    explorer = shared.explorer(choice, level)
    usage = explorer.usage_summary()["counts"]
    colour = COLOUR_BY.get(colour_by, "class")
    if colour == "class" and not explorer.class_names:
        colour = "alive"
    selected = explorer.check_code(code) if code is not None else None
    xy = explorer.projection(projection).tolist()
    name = PROJECTION_NAMES.get(projection, projection) + (f", {explorer.level} level" if explorer.level else "")
    return atlas(xy, usage, explorer.dominant_class(), colour, explorer.class_names, selected, name)


def code_details(shared: Shared, choice: str, code: float | None, level: str | None = None) -> tuple:
    """What one code paints, the held-out patches it stands for, and its nearest codes (clickable)."""
    if code is None:  # the box is empty while someone types
        return (gr.skip(),) * 5
    explorer = shared.explorer(choice, level)
    info = explorer.code(code)
    names = explorer.class_names
    shares = ", ".join(f"{names[c]}: {n}" for c, n in enumerate(info.usage_by_class) if n > 0 and c < len(names))
    text = (
        f"### code {info.code}{_of(explorer.level)}\n"
        f"{info.usage} held-out uses ({100 * info.usage_fraction:.2f}% of latents)"
        + (f"; by class {shares}" if shares else "")
        + ("\n\n**dead code**: no held-out latent chooses it" if info.usage == 0 else "")
        + "\n\n**nearest codes**, left to right: "
        + ", ".join(str(k) for k in info.nearest)
    )
    side = info.tile.shape[0]
    tile = inline_image(enlarge(info.tile, display_scale(side, TILE_PIXELS)), f"code {info.code}", "what it paints")
    exemplars = (
        inline_image(show_many(info.exemplars, EXEMPLAR_COLUMNS, PATCH_PIXELS), "held-out patches", "held-out patches")
        if len(info.exemplars)
        else ""
    )
    strip = labelled_tiles(
        info.nearest_tiles, [str(k) for k in info.nearest], NEAREST_COLUMNS, scale_at_least(side, PATCH_PIXELS)
    )
    return text, tile, exemplars, picture_file(strip.image), clickable_codes(strip, info.nearest)


def _of(level: str | None) -> str:
    return "" if level is None else f" of the {level} level"


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    with gr.Row():
        projection = gr.Radio(
            [("UMAP", "umap"), ("PCA", "pca")], value="umap", label="projection", elem_id="atlas-projection"
        )
        colour_by = gr.Radio(list(COLOUR_BY), value="dominant class", label="colour and shape")
        code = gr.Number(label="code number", precision=0, minimum=0, value=None, elem_id="atlas-code")
    why = gr.Markdown(visible=False, elem_id="atlas-why")
    with gr.Row(equal_height=False):
        with gr.Column(scale=7):
            plot = gr.Plot(show_label=False, elem_id="atlas-plot")
        with gr.Column(scale=5):
            details = gr.Markdown(elem_id="atlas-details")
            with gr.Row():
                with gr.Column(scale=0, min_width=TILE_PIXELS + 8):
                    tile = gr.HTML(elem_id="atlas-tile")
                with gr.Column(scale=1):
                    exemplars = gr.HTML(elem_id="atlas-exemplars")
            gr.Markdown("**nearest codes** in the codebook: click one to choose it", elem_classes=["caption"])
            nearest = gr.Image(
                show_label=False, format="png", interactive=False, elem_id="atlas-nearest", buttons=[], height="auto"
            )
            layout = gr.State(None)
    opened = gr.State(None)  # the checkpoint the page's inputs were last fitted to

    level = shared.level
    figure_inputs = [picker, projection, colour_by, code, level]
    draw = callback(atlas_figure, shared)
    describe = callback(code_details, shared)
    details_outputs = [details, tile, exemplars, nearest, layout]
    private = {"api_visibility": "private", "concurrency_id": MODEL}
    # Each path below runs once per change: the page listens to what a person does (input, select), and a
    # checkpoint's own values set on open are followed by an explicit chain, so no two paths race. The chain
    # reads the checkpoint its inputs were fitted to (`opened`, set with them), not the picker: picked again
    # while the chain runs, the picker would pair the new checkpoint with the old one's projection or code.
    shared.on_checkpoint(
        callback(open_atlas, shared), [picker, level], [projection, why, code, opened], levels=True
    ).success(describe, [opened, code, level], details_outputs, **private).success(
        draw, [opened, projection, colour_by, code, level], plot, **private
    )
    projection.input(draw, figure_inputs, plot, api_name="atlas", concurrency_id=MODEL)
    colour_by.input(draw, figure_inputs, plot, **private)
    # a typed code, or a point clicked (pages/static/app.js types it in); a refused one shows its message
    # once and leaves the page as it was
    code.input(
        describe,
        [picker, code, level],
        details_outputs,
        api_name="atlas_select",
        concurrency_id=MODEL,
        trigger_mode="always_last",
    ).success(draw, figure_inputs, plot, **private)
    nearest.select(callback(code_clicked, shared), layout, code, **private).success(
        describe, [picker, code, level], details_outputs, **private
    ).success(draw, figure_inputs, plot, **private)
