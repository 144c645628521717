"""Reconstruct: an image -> its grid of codes -> the decoded image; edit a code and decode again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from vqvae.app.inputs import from_array, read_image
from vqvae.errors import InputError

from .common import HELDOUT_LAST, MODEL, Shared, callback, display_scale, explain, inline_image, picture_file, show
from .figures import code_grid
from .guards import RecentOnly

if TYPE_CHECKING:
    from vqvae.app.explorer import Decoded

GRID_TITLE = "code numbers"
UPLOAD_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
SKETCHES_KEPT = 32  # drawings sent, not yet submitted, kept at once (each a few KB, at most 256 KiB a layer)
BRUSH_SIZE = 18  # pixels of the 280-pixel canvas: a stroke as thick as MNIST's
# A grey model's drawing is black on white (inverted as it is fitted); a colour model's may use any colour.
BLACK_ONLY = {"colors": ["#000000"], "color_mode": "fixed"}
PAINTS = {
    "colors": ["#000000", "#d62728", "#ff7f0e", "#ffd700", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b"],
    "default_color": "#d62728",
    "color_mode": "defaults",  # these, and a colour picker for any other
}
FOLLOWS_LEVEL = True  # shows one grid of codes: a VQ-VAE-2's chosen level
TEXT = r"""
The encoder turns the image into a grid of vectors $z_e$; each is replaced by its nearest
codebook vector, $k = \arg\min_j \lVert z_e - e_j \rVert_2$, so the image becomes the grid of
code numbers on the right. The decoder paints the image back from those codes alone. Move the
slider to pick another held-out image, upload one, or draw one. **Click the reconstruction** to
pick a cell, choose a code number, and see what the decoder makes of the change.
"""


def grid_title(level: str | None) -> str:
    return GRID_TITLE if level is None else f"{GRID_TITLE}, {level} level"


def _result(decoded: Decoded, reference: Any, cell: tuple[int, int] | None = None, level: str | None = None) -> tuple:
    psnr = f"**PSNR** {decoded.psnr_db:.2f} dB against the input" if decoded.psnr_db is not None else ""
    levels = {level: grid.tolist() for level, grid in decoded.levels.items()}  # a hierarchy's every grid
    state = {"indices": decoded.indices.tolist(), "reference": reference, "levels": levels}
    figure = code_grid(decoded.indices.tolist(), grid_title(level), highlight=cell)
    return picture_file(show(decoded.reconstruction)), figure, psnr, state


def _with_input(decoded: Decoded, level: str | None) -> tuple:
    return (inline_image(decoded.image, "input", "input"), *_result(decoded, decoded.image, None, level))


def reconstruct_heldout(shared: Shared, choice: str, index: float, level: str | None = None) -> tuple:
    explorer = shared.explorer(choice, level)
    decoded = explorer.reconstruct_heldout(int(index))
    label = explorer.heldout_label(int(index))
    source = f"held-out image {int(index)}" + (f", class {label}" if label else "")
    return (*_with_input(decoded, explorer.level), source)


def heldout_if_current(shared: Shared, opened: str, picked: str, index: float, level: str | None = None) -> tuple:
    """The held-out image of the checkpoint the inputs were fitted to, unless another was picked since: its own
    chain shows it, and a late answer for the old one must not come after it and overwrite it."""
    if opened != picked:
        return tuple(gr.skip() for _ in range(6))
    return reconstruct_heldout(shared, opened, index, level)


def reconstruct_upload(shared: Shared, choice: str, path: str | None, level: str | None = None) -> tuple:
    if not path:
        raise InputError("choose an image file first")
    explorer = shared.explorer(choice, level)
    decoded = explorer.reconstruct_picture(read_image(path))
    return (*_with_input(decoded, explorer.level), "your upload, fitted to the model's input")


def reconstruct_drawing(shared: Shared, choice: str, drawing: dict | None, level: str | None = None) -> tuple:
    picture = (drawing or {}).get("composite")
    if picture is None:
        raise InputError("draw something first")
    explorer = shared.explorer(choice, level)
    decoded = explorer.reconstruct_picture(from_array(picture))
    return (*_with_input(decoded, explorer.level), "your drawing, fitted to the model's input")


def pick_cell(shared: Shared, choice: str, state: dict | None, level: str | None, evt: gr.SelectData) -> tuple:
    """A click on the reconstruction (x, y in display pixels) -> the grid cell under it."""
    if not state:
        raise InputError("reconstruct an image first")
    explorer = shared.explorer(choice, level)
    scale = display_scale(explorer.checkpoint.config.model.image_size)
    x, y = evt.index
    row, col = explorer.cell_at(x / scale, y / scale)
    code = state["indices"][row][col]
    figure = code_grid(state["indices"], grid_title(explorer.level), highlight=(row, col))
    return row, col, code, figure


def edit_code(
    shared: Shared, choice: str, state: dict | None, row: float, col: float, code: float, level: str | None = None
) -> tuple:
    if not state:
        raise InputError("reconstruct an image first")
    explorer = shared.explorer(choice, level)
    edited = explorer.set_code(state["indices"], int(row), int(col), explorer.check_code(code))
    decoded = explorer.decode(edited, state["reference"], state.get("levels"))
    return _result(decoded, state["reference"], (int(row), int(col)), explorer.level)


def limits(shared: Shared, choice: str, index: float | None = 0, level: str | None = None) -> tuple:
    """The inputs fitted to the chosen checkpoint: the held-out slider (kept where it was, if this split has
    that image) and the edit boxes to its split, grid and K; the words to what its pictures are (digits or
    images); the brush to its channels; and the checkpoint they were fitted to."""
    explorer = shared.explorer(choice, level)
    h, w = explorer.latent_shape
    fitting = explorer.fitting
    last = explorer.heldout_count - 1
    return (
        gr.Slider(value=min(int(index or 0), last), maximum=last),
        gr.Number(maximum=h - 1),
        gr.Number(maximum=w - 1),
        gr.Number(maximum=explorer.num_embeddings - 1, label=f"code number (0 to {explorer.num_embeddings - 1})"),
        gr.Tab(label=f"Held-out {fitting.noun}"),
        sketch_caption(fitting.a_noun, fitting.channels == 3),
        gr.Sketchpad(brush=brush(fitting.channels == 3)),
        choice,
    )


def sketch_caption(a_noun: str, colour: bool) -> str:
    pick = "Pick the brush and a colour" if colour else "Pick the brush"
    return f"{pick}, draw {a_noun}, press **Reconstruct drawing**."


def brush(colour: bool) -> gr.Brush:
    return gr.Brush(default_size=BRUSH_SIZE, **(PAINTS if colour else BLACK_ONLY))


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    state = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280, elem_id="reconstruct-inputs"):
            # the three tabs always in sight, never folded into a menu (the held-out tab's label follows the
            # checkpoint; a longer one, or the presenter view's larger type, wraps to a second row)
            with gr.Tabs(overflow_behavior="wrap"):
                with gr.Tab("Held-out image", elem_id="heldout-tab") as heldout_tab:
                    index = gr.Slider(0, HELDOUT_LAST, value=0, step=1, label="held-out image", elem_id="heldout-index")
                    heldout_button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-heldout")
                with gr.Tab("Upload"):
                    # a file, not gr.Image: the upload is decoded by vqvae.app.inputs (restricted formats, size caps)
                    upload = gr.File(
                        label="an image file",
                        file_types=list(UPLOAD_TYPES),
                        type="filepath",
                        height=140,
                        elem_id="upload",
                    )
                    upload_button = gr.Button("Reconstruct upload", elem_id="reconstruct-upload")
                with gr.Tab("Draw"):
                    caption = gr.Markdown(
                        sketch_caption("an image", False), elem_classes=["caption"], elem_id="sketch-caption"
                    )
                    sketch = gr.Sketchpad(
                        type="numpy",
                        show_label=False,
                        canvas_size=(280, 280),
                        fixed_canvas=True,
                        layers=False,
                        transforms=(),
                        brush=brush(False),
                        height=320,
                        elem_id="sketch",
                    )
                    sketch.blob_storage = RecentOnly(SKETCHES_KEPT)  # see pages/guards.py
                    sketch_button = gr.Button("Reconstruct drawing", elem_id="reconstruct-drawing")
        with gr.Column(scale=1, min_width=240):
            source = gr.Markdown(elem_classes=["caption"], elem_id="source")
            original = gr.HTML(elem_id="input-image")
        with gr.Column(scale=1, min_width=240):
            gr.Markdown("**reconstruction**: click a cell to edit it", elem_classes=["caption"])
            decoded = gr.Image(
                show_label=False,
                format="png",
                interactive=False,
                elem_id="reconstruction",
                height=240,
                buttons=[],
            )
            psnr = gr.Markdown(elem_id="psnr")
        with gr.Column(scale=1, min_width=300):
            grid = gr.Plot(show_label=False, elem_id="code-grid")
    with gr.Row():
        row = gr.Number(label="row", precision=0, minimum=0, value=0, elem_id="edit-row")
        col = gr.Number(label="column", precision=0, minimum=0, value=0, elem_id="edit-col")
        code = gr.Number(label="code number", precision=0, minimum=0, value=0, elem_id="edit-code")
        edit_button = gr.Button("Decode with this code", variant="primary", elem_id="edit-button")

    outputs = [original, decoded, grid, psnr, state, source]
    heldout = callback(reconstruct_heldout, shared)
    level = shared.level
    heldout_button.click(heldout, [picker, index, level], outputs, api_name="reconstruct_heldout", concurrency_id=MODEL)
    # the page follows its slider: the last position wins while it moves
    index.change(
        heldout,
        [picker, index, level],
        outputs,
        api_visibility="private",
        concurrency_id=MODEL,
        trigger_mode="always_last",
        show_progress="hidden",
    )
    upload_button.click(
        callback(reconstruct_upload, shared),
        [picker, upload, level],
        outputs,
        api_name="reconstruct_upload",
        concurrency_id=MODEL,
    )
    sketch_button.click(
        callback(reconstruct_drawing, shared),
        [picker, sketch, level],
        outputs,
        api_name="reconstruct_drawing",
        concurrency_id=MODEL,
    )
    decoded.select(
        callback(pick_cell, shared),
        [picker, state, level],
        [row, col, code, grid],
        api_visibility="private",
        concurrency_id=MODEL,
    )
    edit_inputs = [picker, state, row, col, code, level]
    edit_button.click(
        callback(edit_code, shared),
        edit_inputs,
        [decoded, grid, psnr, state],
        api_name="edit_code",
        concurrency_id=MODEL,
    )
    # on open and on another checkpoint: fit the inputs to it, then show the current held-out image
    # the chain reads the checkpoint the inputs were fitted to (`opened`, set with them), not the picker, which
    # another pick could change before the chain ends (pairing the new checkpoint with the old one's index);
    # a chain overtaken by a later pick shows nothing (the later one's chain does)
    opened = gr.State(None)
    fitted = [index, row, col, code, heldout_tab, caption, sketch, opened]
    shared.on_checkpoint(callback(limits, shared), [picker, index, level], fitted, levels=True).then(
        callback(heldout_if_current, shared),
        [opened, picker, index, level],
        outputs,
        api_visibility="private",
        concurrency_id=MODEL,
    )
