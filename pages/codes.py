"""Per-code reconstructions: every code's tile at once, and one code put into a real image."""

from __future__ import annotations

import gradio as gr

from vqvae.images import enlarge

from .common import MODEL, Shared, callback, display_scale, explain, heldout_range, inline_image, picture_file
from .figures import code_grid

TEXT = r"""
Every code $e_k$ of the codebook, shown as what the decoder paints around it: the mean of the decoded
windows at its held-out uses (a code the held-out split never uses is shown decoded alone on a
blank grid). Sort by usage to see the busiest codes first. **Click a tile** to choose it, then put it
into a held-out image: in one cell, or in place of every use of another code.
"""

SHEET_COLUMNS = 32
SHEET_PIXELS = 26  # each tile about this many pixels on screen


def code_sheet(shared: Shared, choice: str, order: str) -> tuple:
    sheet = shared.explorer(choice).sheet("usage" if order == "by usage" else "code", SHEET_COLUMNS)
    scale = display_scale(sheet.cell, SHEET_PIXELS)
    layout = {"order": sheet.order, "columns": sheet.columns, "cell": sheet.cell * scale}
    return picture_file(enlarge(sheet.image, scale)), layout


def pick_tile(shared: Shared, choice: str, layout: dict | None, evt: gr.SelectData) -> int:
    """A click on the sheet (x, y in display pixels) -> the code of the tile under it."""
    if not layout:
        return gr.skip()
    x, y = evt.index
    slot = (int(y) // layout["cell"]) * layout["columns"] + int(x) // layout["cell"]
    return layout["order"][min(slot, len(layout["order"]) - 1)]


def code_in_context(
    shared: Shared, choice: str, index: float, mode: str, old: float, row: float, col: float, new: float
) -> tuple:
    """Put code `new` into held-out image `index`: at (row, col), or wherever code `old` is."""
    explorer = shared.explorer(choice)
    before = explorer.reconstruct_heldout(int(index))
    if mode == "one cell":
        edited = explorer.set_code(before.indices, int(row), int(col), new)
        cell = (int(row), int(col))
    else:
        edited = explorer.replace_code(before.indices, old, new)
        cell = None
    after = explorer.decode(edited, before.image)
    changed = int((edited != before.indices).sum())
    text = f"{changed} of {edited.size} cells changed; PSNR against the input {before.psnr_db:.2f}"
    text += f" -> {after.psnr_db:.2f} dB"
    return (
        inline_image(before.reconstruction, "reconstruction", "reconstruction"),
        inline_image(after.reconstruction, "with the code put in", "with the code put in"),
        code_grid(edited.tolist(), "edited codes", cell),
        text,
    )


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    layout = gr.State(None)
    order = gr.Radio(["by code", "by usage"], value="by code", label="order")
    sheet = gr.Image(label="every code (click one)", format="png", interactive=False, elem_id="code-sheet")
    with gr.Row():
        with gr.Column(min_width=260):
            new = gr.Number(label="code to put in", precision=0, minimum=0, value=0, elem_id="context-code")
            index = gr.Slider(0, 499, value=0, step=1, label="held-out image")
            mode = gr.Radio(["every use of a code", "one cell"], value="every use of a code", label="replace")
            old = gr.Number(label="code to replace", precision=0, minimum=0, value=0)
            with gr.Row():
                row = gr.Number(label="row", precision=0, minimum=0, value=3)
                col = gr.Number(label="column", precision=0, minimum=0, value=3)
            apply = gr.Button("Decode", variant="primary", elem_id="context-button")
        before = gr.HTML(elem_id="context-before")
        after = gr.HTML(elem_id="context-after")
        grid = gr.Plot(label="edited codes")
    summary = gr.Markdown(elem_id="context-summary")

    draw = callback(code_sheet, shared)
    shared.on_checkpoint(draw, [picker, order], [sheet, layout])
    shared.on_checkpoint(callback(heldout_range, shared), picker, index)
    order.change(draw, [picker, order], [sheet, layout], api_name="codebook_sheet", concurrency_id=MODEL)
    sheet.select(callback(pick_tile, shared), [picker, layout], new, api_visibility="private", concurrency_id=MODEL)
    inputs = [picker, index, mode, old, row, col, new]
    apply.click(
        callback(code_in_context, shared),
        inputs,
        [before, after, grid, summary],
        api_name="code_in_context",
        concurrency_id=MODEL,
    )
