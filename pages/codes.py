"""Per-code reconstructions: the codebook's tiles a page at a time, and one code put into a real image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from .common import (
    HELDOUT_LAST,
    MODEL,
    Shared,
    callback,
    clickable_codes,
    code_clicked,
    explain,
    inline_image,
    picture_file,
    scale_at_least,
)
from .figures import code_grid

if TYPE_CHECKING:
    from vqvae.app.explorer import Explorer

FOLLOWS_LEVEL = True  # shows one grid of codes: a VQ-VAE-2's chosen level
TEXT = r"""
Every code $e_k$ of the codebook, shown as what the decoder paints around it: the mean of the decoded
windows at its held-out uses (a code the held-out split never uses is shown decoded alone on a
blank grid). Sort by usage to see the busiest codes first. **Click a tile** to choose it: it goes into the
held-out image on the right, in place of every use of another code or in one cell.
"""

ORDERS = {"by code": "code", "by usage": "usage"}
MODES = ("every use of a code", "one cell")
SHEET_COLUMNS = 8
SHEET_PAGE = 64  # codes a page: 8 x 8 tiles of TILE_PIXELS fit beside the edit on a 1440-pixel screen
TILE_PIXELS = 64  # each tile at least this many pixels on screen


def fit_inputs(shared: Shared, choice: str, level: str | None = None) -> tuple:
    """Fit the inputs to the chosen checkpoint (K, grid, held-out split) and start on a telling edit:
    a busy, high-contrast code put in place of the code held-out image 0 uses most."""
    explorer = shared.explorer(choice, level)
    last, (h, w) = explorer.num_embeddings - 1, explorer.latent_shape
    return (
        gr.Number(value=explorer.telling_code(), maximum=last, label=f"code to put in (0 to {last})"),
        gr.Number(value=explorer.main_code(0), maximum=last),
        gr.Number(value=h // 2, maximum=h - 1),  # the grid beside them numbers its rows and columns
        gr.Number(value=w // 2, maximum=w - 1),
        gr.Slider(value=0, maximum=explorer.heldout_count - 1),
        choice,
    )


def code_sheet(shared: Shared, choice: str, order: str, code: float | None, level: str | None = None) -> tuple:
    """The page of the sheet that holds `code`, with that tile framed."""
    return _sheet(shared.explorer(choice, level), order, None, code)


def turn_page(
    shared: Shared, choice: str, order: str, page: int, code: float | None, level: str | None = None
) -> tuple:
    return _sheet(shared.explorer(choice, level), order, page, code)


def _sheet(explorer: Explorer, order: str, page: int | None, code: float | None) -> tuple:
    scale = scale_at_least(explorer.analysis.tiles.shape[-1], TILE_PIXELS)
    sheet = explorer.sheet(ORDERS.get(order, order), SHEET_COLUMNS, page, SHEET_PAGE, code, scale)
    tiles = sheet.tiles
    layout = clickable_codes(tiles, sheet.order)
    of = "" if explorer.level is None else f" of the {explorer.level} level"
    chosen = "" if code is None else f"**code {int(code)}**{of} chosen ({explorer.code(code).usage} held-out uses). "
    shown = f"{chosen}Click a tile to choose another; page {sheet.page + 1} of {sheet.pages}."
    pages = gr.Radio(
        choices=_page_names(ORDERS.get(order, order), explorer.num_embeddings),
        value=sheet.page,
        label="page, busiest codes first" if ORDERS.get(order) == "usage" else "page of code numbers",
    )
    return picture_file(tiles.image), layout, pages, shown


def _page_names(order: str, k: int) -> list[tuple[str, int]]:
    """The page chooser's choices: code numbers (0-63), or ranks by usage (1-64)."""
    first = 1 if order == "usage" else 0
    return [
        (f"{start + first}–{min(start + SHEET_PAGE, k) - 1 + first}", page)
        for page, start in enumerate(range(0, k, SHEET_PAGE))
    ]


def show_fields(mode: str) -> tuple:
    """Only the fields of the chosen way of putting the code in."""
    return gr.Column(visible=mode == MODES[0]), gr.Column(visible=mode == MODES[1])


def code_in_context(
    shared: Shared,
    choice: str,
    index: float,
    mode: str,
    old: float,
    row: float,
    col: float,
    new: float,
    level: str | None = None,
) -> tuple:
    """Put code `new` into held-out image `index`: at (row, col), or wherever code `old` is (in the grid of the
    chosen level of a hierarchy, the other levels kept)."""
    explorer = shared.explorer(choice, level)
    before = explorer.reconstruct_heldout(int(index))
    if mode == "one cell":
        edited = explorer.set_code(before.indices, int(row), int(col), new)
        cell = (int(row), int(col))
    else:
        edited = explorer.replace_code(before.indices, old, new)
        cell = None
    after = explorer.decode(edited, before.image, before.levels)
    changed = explorer.changed_cells(before.indices, edited)
    text = f"{len(changed)} of {edited.size} cells changed; PSNR against the input {before.psnr_db:.2f}"
    text += f" -> {after.psnr_db:.2f} dB"
    if not changed:
        text += (
            f". The cell already holds code {int(new)}."
            if cell
            else f". Code {int(old)} does not appear in held-out image {int(index)}: pick one from its grid."
        )
    title = "codes after the edit, changed cells outlined"
    return (
        inline_image(before.reconstruction, "reconstruction", f"held-out image {int(index)}"),
        inline_image(after.reconstruction, "with the code put in", f"with code {int(new)} put in"),
        code_grid(edited.tolist(), title, cell, marked=changed),
        text,
    )


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    layout = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=7, min_width=560):
            with gr.Row():
                order = gr.Radio(list(ORDERS), value="by code", label="order", scale=0, min_width=150)
                pages = gr.Radio([("0–63", 0)], value=0, label="page of code numbers", elem_id="code-pages")
            chosen = gr.Markdown(elem_classes=["caption"], elem_id="code-chosen")
            sheet = gr.Image(
                show_label=False, format="png", interactive=False, elem_id="code-sheet", buttons=[], height="auto"
            )
        with gr.Column(scale=5, min_width=420):
            index = gr.Slider(0, HELDOUT_LAST, value=0, step=1, label="held-out image", elem_id="context-index")
            mode = gr.Radio(list(MODES), value=MODES[0], label="put the chosen code in", elem_id="context-mode")
            with gr.Row():
                new = gr.Number(
                    label="code to put in", precision=0, minimum=0, value=None, elem_id="context-code", min_width=200
                )
                with gr.Column(visible=True, min_width=200, elem_id="context-every") as every:
                    old = gr.Number(label="code to replace", precision=0, minimum=0, value=None, elem_id="context-old")
                with gr.Column(visible=False, min_width=200, elem_id="context-cell") as one:
                    with gr.Row():
                        row = gr.Number(
                            label="row", precision=0, minimum=0, value=3, elem_id="context-row", min_width=100
                        )
                        col = gr.Number(
                            label="column", precision=0, minimum=0, value=3, elem_id="context-col", min_width=100
                        )
            with gr.Row():
                before = gr.HTML(elem_id="context-before")
                after = gr.HTML(elem_id="context-after")
            summary = gr.Markdown(elem_id="context-summary")
            grid = gr.Plot(show_label=False, elem_id="context-grid")

    private = {"api_visibility": "private", "concurrency_id": MODEL}
    draw = callback(code_sheet, shared)
    sheet_outputs = [sheet, layout, pages, chosen]
    decode = callback(code_in_context, shared)
    level = shared.level
    inputs = [picker, index, mode, old, row, col, new, level]
    context_outputs = [before, after, grid, summary]
    # The public names first: an event left unnamed takes its function's name, if still free.
    # Each path runs once per change: the page listens to what a person does (input, select), and the values
    # set on open are followed by an explicit chain, so no two paths race with half-updated inputs.
    gr.on(
        [index.input, mode.input, old.input, row.input, col.input],
        decode,
        inputs,
        context_outputs,
        api_name="code_in_context",
        concurrency_id=MODEL,
        trigger_mode="always_last",
    )
    order.input(draw, [picker, order, new, level], sheet_outputs, api_name="codebook_sheet", concurrency_id=MODEL)
    # the chain reads the checkpoint the inputs were fitted to (`opened`, set with them), not the picker, which
    # another pick could change before the chain ends (pairing the new checkpoint with the old one's codes)
    opened = gr.State(None)
    shared.on_checkpoint(
        callback(fit_inputs, shared), [picker, level], [new, old, row, col, index, opened], levels=True
    ).success(draw, [opened, order, new, level], sheet_outputs, **private).success(
        decode, [opened, *inputs[1:]], context_outputs, **private
    )
    pages.input(callback(turn_page, shared), [picker, order, pages, new, level], sheet_outputs, **private)
    mode.input(show_fields, mode, [every, one], api_visibility="private", show_progress="hidden")
    # a new code is framed on the sheet, then put in; a refused one says so once and changes nothing
    new.input(draw, [picker, order, new, level], sheet_outputs, trigger_mode="always_last", **private).success(
        decode, inputs, context_outputs, **private
    )
    sheet.select(callback(code_clicked, shared), layout, new, **private).success(
        draw, [picker, order, new, level], sheet_outputs, **private
    ).success(decode, inputs, context_outputs, **private)
