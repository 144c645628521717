"""Levels: what each level of a VQ-VAE-2 carries (Razavi et al. 2019): one held-out image decoded from every
level, from its top codes alone, under another image's top codes, and with its bottom codes drawn again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from .common import HELDOUT_LAST, MODEL, Shared, callback, explain, inline_image, show_many

if TYPE_CHECKING:
    from vqvae.app.levels import LevelsStudy

TEXT = r"""
VQ-VAE-2 encodes an image as a **hierarchy** of code grids: a small **top** grid for the whole picture and a
larger **bottom** grid for the detail, quantised with the top's codes in view, so it spends its codes on what
the top left out. Each level has its own codebook and its own learned prior; the bottom's is conditioned on
the top codes. Below, one held-out image decoded from **both levels**; from the **top alone** (the bottom
filled by its prior's likeliest codes given the top); with **another image's top codes** over this image's
bottom codes; and with the **bottom drawn again** by its prior, the top kept: the whole stays, details vary.
"""
ONE_GRID = (
    "This checkpoint has **one grid of codes**: the Levels page shows a VQ-VAE-2. Pick one with levels "
    "(the level choice appears beside the checkpoint)."
)
PICTURE_PIXELS = 160  # each picture on screen, at least


def show_levels(shared: Shared, choice: str, index: float, donor: float, temperature: float, seed: float) -> tuple:
    """The page for a hierarchy (its held-out sliders fitted to its split), or a note for one grid of codes."""
    explorer = shared.explorer(choice)
    if not explorer.levels:
        return gr.Markdown(ONE_GRID, visible=True), gr.Column(visible=False), gr.skip(), gr.skip(), *[""] * 7
    last = explorer.heldout_count - 1
    index, donor = min(int(index or 0), last), min(int(donor or 0), last)
    study = explorer.study_levels(index, donor, temperature=temperature, seed=seed)
    psnr = study.psnr_db
    return (
        gr.Markdown(visible=False),
        gr.Column(visible=True),
        gr.Slider(value=index, maximum=last),
        gr.Slider(value=donor, maximum=last),
        _picture(study.image, "the held-out image", f"held-out image {int(index)}"),
        _picture(study.both, "decoded from both levels", f"both levels: {psnr['both']:.1f} dB"),
        _picture(study.top_alone, "decoded from the top codes alone", f"top alone: {psnr['top alone']:.1f} dB"),
        _picture(study.donor, "the image whose top codes are borrowed", f"held-out image {int(donor)}"),
        _picture(study.swapped, "this image's bottom codes under another's top", f"under the top of {int(donor)}"),
        _resampled(study),
        level_table(study),
    )


def _picture(image, alt: str, caption: str) -> str:
    return inline_image(show_many(image[None], 1, PICTURE_PIXELS), alt, caption)


def _resampled(study: LevelsStudy) -> str:
    n = len(study.resampled)
    caption = f"the bottom drawn again {n} times, the top kept: {study.psnr_db['resampled']:.1f} dB on average"
    return inline_image(show_many(study.resampled, n, PICTURE_PIXELS), "the bottom codes drawn again", caption)


def level_table(study: LevelsStudy) -> str:
    rows = [
        f"| {f.level} | {f.shape[0]} x {f.shape[1]} | {f.codes_used} | "
        + ("" if f.bits_per_latent is None else f"{f.bits_per_latent:.2f} | {f.bits_per_latent * f.grid.size:.0f}")
        + " |"
        for f in study.levels
    ]
    header = "| level | grid | codes used in this image | bits / latent, learned prior | bits, the whole grid |\n"
    return header + "|---|---|---|---|---|\n" + "\n".join(rows)


def build(shared: Shared) -> None:
    explain(TEXT)
    one_grid = gr.Markdown(ONE_GRID, visible=False, elem_id="levels-one-grid")
    with gr.Column(visible=False, elem_id="levels-body") as body:
        with gr.Row():
            index = gr.Slider(0, HELDOUT_LAST, value=0, step=1, label="held-out image", elem_id="levels-index")
            donor = gr.Slider(0, HELDOUT_LAST, value=1, step=1, label="top codes from image", elem_id="levels-donor")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="temperature", info="of the redrawn bottom")
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="levels-seed")
        with gr.Row(equal_height=True):
            image = gr.HTML(elem_id="levels-image")
            both = gr.HTML(elem_id="levels-both")
            alone = gr.HTML(elem_id="levels-top-alone")
            donor_image = gr.HTML(elem_id="levels-donor-image")
            swapped = gr.HTML(elem_id="levels-swapped")
        resampled = gr.HTML(elem_id="levels-resampled")
        table = gr.Markdown(elem_id="levels-table")
    inputs = [shared.picker, index, donor, temperature, seed]
    outputs = [one_grid, body, index, donor, image, both, alone, donor_image, swapped, resampled, table]
    show = callback(show_levels, shared)
    shared.on_checkpoint(show, inputs, outputs)
    gr.on(
        [index.release, donor.release, temperature.release, seed.submit],
        show,
        inputs,
        outputs,
        api_name="levels",
        concurrency_id=MODEL,
        trigger_mode="always_last",
    )
