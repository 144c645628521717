"""Sampling: decode codes drawn from the uniform, unigram and learned priors, side by side,
and watch the learned prior fill one grid a code at a time."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from vqvae.config import PRIORS
from vqvae.errors import InputError
from vqvae.images import png_bytes

from .common import MODEL, Shared, callback, explain, inline_image, tiled

if TYPE_CHECKING:
    from vqvae.app.explorer import Explorer, Frames

TEXT = r"""
The VQ-VAE is trained with a **uniform** prior over the $K$ codes: $\log_2 K$ bits per latent.
Drawing every code uniformly and decoding gives noise-like patches. The **unigram** prior draws each
code by how often it is used, still independently. The **learned** prior is a gated PixelCNN that
predicts each code from the codes above and to its left (and the class),
$p(z) = \prod_t p(z_t \mid z_{{<t}}, y)$, so its samples look like real {nouns}.{levels} Same seed for all
three; the samples follow the settings as you change them.
"""
LEVELS_TEXT = (
    " This checkpoint is a VQ-VAE-2: every level has its own prior, and a sample is drawn top first, the top grid,"
    " then the bottom grid given the top codes (ancestral sampling)."
)
STEPS_TEXT = """
One grid drawn by the learned prior with the class, temperature and seed above, in raster order:
at each step the prior gives every code a probability for the next cell, and one code is drawn.
Press **Play**, or drag the step slider.{levels}
"""
STEPS_LEVELS = " The top grid is drawn first; then the bottom grid, each of its codes given the whole top grid."
BITS_NOTE = (
    "**held-out**: the bits each prior needs for the codes of real held-out images (fewer: the prior "
    "knows the data better; the uniform prior always needs $\\log_2 K$ per latent). **its samples**: the "
    "bits the {judge} needs for each prior's samples (fewer: the samples look more like real codes to it)."
)

ANY_CLASS = "any"
TITLES = {"uniform": "uniform prior", "unigram": "unigram prior", "learned": "learned prior (PixelCNN)"}
JUDGES = {"learned": "learned prior", "unigram": "unigram prior"}
NO_PRIOR = "no learned prior in this checkpoint; train one with"
FEW_SAMPLES, COLUMNS_FEW, COLUMNS_MANY = 16, 4, 5  # five to a row keeps each sample >= 64 px in a third of 1440 px

STATIC = Path(__file__).parent / "static"
# The step-by-step player runs in the browser: the server sends one sample's frames once (the picture
# and the grid after every step, the five likeliest codes at each step and their tiles), and playing,
# pausing and scrubbing then cost the server nothing. A gr.Timer stepping on the server would answer
# one request per step for each visitor: a class of 30 pressing play at once would fill the queue.
PLAYER_JS = (STATIC / "sampler.js").read_text()
PLAYER_CSS = (STATIC / "sampler.css").read_text()
# The draw button plays the sampler as it is pressed (the same settings give the same frames, which
# the browser would not see as new); its inputs go on to the server unchanged.
PLAY_ON_PRESS = """(...inputs) => {
  document.querySelector("#step-player .sampler")?.dispatchEvent(new CustomEvent("sampler:play"));
  return inputs;
}"""


def class_choices(shared: Shared, choice: str) -> gr.Dropdown:
    explorer = shared.explorer(choice)
    names = explorer.class_names if explorer.conditional else []
    return gr.Dropdown(choices=[ANY_CLASS, *names], value=ANY_CLASS)


def _label(shared: Shared, choice: str, name: str | None) -> int | None:
    names = shared.explorer(choice).class_names
    if name in (None, "", ANY_CLASS):
        return None
    if name not in names:
        raise InputError(f"class {name!r} does not exist here; choose {ANY_CLASS} or one of {', '.join(names)}")
    return names.index(name)


def _no_prior(choice: str) -> str:
    command = html.escape(f"python -m vqvae train-prior {choice}")
    return f'<p class="missing-prior">{NO_PRIOR} <code>{command}</code></p>'


def sample_priors(shared: Shared, choice: str, label: str, temperature: float, n: float, seed: float) -> tuple:
    """A picture of samples from each prior, and a table of what each one costs in bits."""
    explorer = shared.explorer(choice)
    drawn = explorer.compare(n, label=_label(shared, choice, label), temperature=temperature, seed=seed)
    pictures = []
    for name in PRIORS:
        if name in drawn:
            images = drawn[name].images
            columns = COLUMNS_FEW if len(images) <= FEW_SAMPLES else COLUMNS_MANY
            pictures.append(inline_image(tiled(images, columns), f"samples from the {TITLES[name]}"))
        else:
            pictures.append(_no_prior(choice))
    return (*pictures, bits_table(explorer, drawn))


def bits_table(explorer: Explorer, drawn: dict) -> str:
    judge = JUDGES[explorer.judge]
    rows = []
    for name in PRIORS:
        if name not in drawn:
            rows.append(f"| {TITLES[name]} | not in this checkpoint | | | |")
            continue
        held_out, latents = explorer.heldout_bits[name], explorer.priors[name].latents  # every level's
        samples = drawn[name].bits_per_latent
        rows.append(
            f"| {TITLES[name]} | {held_out:.2f} | {held_out * latents:.0f} | {samples:.2f} | {samples * latents:.0f} |"
        )
    header = (
        "| prior | held-out bits / latent, under this prior | held-out bits / image, under this prior"
        f" | its samples: bits / latent, under the {judge} | its samples: bits / image, under the {judge} |\n"
        "|---|---|---|---|---|\n"
    )
    return header + "\n".join(rows) + "\n\n" + BITS_NOTE.format(judge=judge)


def _data_url(image: np.ndarray) -> str:
    """(H, W, C) uint8 -> a data: URL of its PNG at its own size (the page enlarges it, without blur)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def sample_steps(shared: Shared, choice: str, label: str, temperature: float, seed: float) -> dict[str, Any]:
    """One grid from the learned prior, step by step, as the player in the page shows it."""
    explorer = shared.explorer(choice)
    frames = explorer.sample_frames(_label(shared, choice, label), temperature, seed)
    return _player(explorer, frames, _settings(explorer, label, temperature, seed))


def step_player(shared: Shared, choice: str, label: str, temperature: float, seed: float) -> dict[str, Any]:
    """The player's frames at these settings, or, for a checkpoint without a learned prior, why there are none."""
    if "learned" not in shared.explorer(choice).priors:
        return {"note": NO_PRIOR, "command": f"python -m vqvae train-prior {choice}"}
    return sample_steps(shared, choice, label, temperature, seed)


def _settings(explorer: Explorer, label: str | None, temperature: float, seed: float) -> str:
    """What the player is showing, in words."""
    parts = [f"temperature {float(temperature):g}", f"seed {int(seed)}"]
    if explorer.conditional:
        parts.insert(0, "any class (one drawn from the seed)" if label in (None, "", ANY_CLASS) else f"class {label}")
    return " · ".join(parts)


def _player(explorer: Explorer, frames: Frames, title: str) -> dict[str, Any]:
    """Everything the browser needs to play the frames: JSON of plain lists, pictures as data: URLs. A
    hierarchy's levels are drawn in stages, top first, each with its grid and its codes' tiles."""
    stages = []
    for stage in frames.stages:
        steps = slice(stage.start, stage.start + stage.grid.size)
        codes = sorted({*frames.top_codes[steps].ravel().tolist(), *stage.grid.ravel().tolist()})
        tiles = explorer.at(stage.level).tiles(codes)
        stages.append(
            {
                "level": stage.level,
                "start": stage.start,  # frame t shows the stage's first t - start cells, in raster order
                "grid": stage.grid.tolist(),
                "tiles": {str(k): _data_url(tile) for k, tile in zip(codes, tiles)},
            }
        )
    return {
        "title": title,
        "num_embeddings": explorer.num_embeddings,
        "stages": stages,
        "frames": [_data_url(image) for image in frames.images],
        "top_codes": frames.top_codes.tolist(),
        "top_probs": [[round(p, 4) for p in row] for row in frames.top_probs.tolist()],
        "drawn_probs": [round(p, 4) for p in frames.drawn_probs.tolist()],
    }


def open_checkpoint(shared: Shared, choice: str, temperature: float, n: float, seed: float) -> tuple:
    """The page for a checkpoint just picked (or opened): what its samples should look like, its classes,
    samples at the current settings, and the step-by-step player ready at step 0 (its button only where
    there is a learned prior)."""
    explorer = shared.explorer(choice)
    learned = "learned" in explorer.priors
    hierarchy = bool(explorer.levels)
    return (
        TEXT.format(nouns=explorer.fitting.nouns, levels=LEVELS_TEXT if hierarchy else ""),
        STEPS_TEXT.format(levels=STEPS_LEVELS if hierarchy else ""),
        class_choices(shared, choice),
        gr.Button(interactive=learned),
        *sample_priors(shared, choice, ANY_CLASS, temperature, n, seed),
        step_player(shared, choice, ANY_CLASS, temperature, seed),
    )


def redraw(shared: Shared, choice: str, label: str, temperature: float, n: float, seed: float) -> tuple:
    """Samples and the player, following a changed setting."""
    return (
        *sample_priors(shared, choice, label, temperature, n, seed),
        step_player(shared, choice, label, temperature, seed),
    )


def build(shared: Shared) -> None:
    picker = shared.picker
    text = explain(TEXT.format(nouns="images", levels=""))
    with gr.Row():
        label = gr.Dropdown(
            [ANY_CLASS],
            value=ANY_CLASS,
            label="class",
            info="steers the learned prior",
            elem_id="sample-class",
            allow_custom_value=True,
        )
        temperature = gr.Slider(
            0, 2, value=1.0, step=0.05, label="temperature", info="0: the likeliest code", elem_id="temperature"
        )
        n = gr.Slider(1, 64, value=16, step=1, label="samples", info="per prior", elem_id="sample-count")
        seed = gr.Number(value=0, precision=0, label="seed", info="same seed, same samples", elem_id="sample-seed")
        draw = gr.Button("Sample", variant="primary", elem_id="sample-button", scale=0, min_width=120)
    with gr.Row():
        pictures = []  # inline images: one reply carries all three pictures, no file downloads after it
        for name in PRIORS:
            with gr.Column(min_width=200):
                gr.Markdown(f"**{TITLES[name]}**")
                pictures.append(gr.HTML(elem_id=f"samples-{name}"))
    table = gr.Markdown(elem_id="sample-bits", latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    gr.Markdown("### The learned prior, one code at a time")
    steps_text = explain(STEPS_TEXT.format(levels=""))
    steps_button = gr.Button("Draw one sample step by step", elem_id="steps-button", scale=0)
    player = gr.HTML(
        None,
        html_template='<div class="sampler"></div>',
        css_template=PLAYER_CSS,
        js_on_load=PLAYER_JS,
        elem_id="step-player",
    )

    opened = [text, steps_text, label, steps_button, *pictures, table, player]
    shared.on_checkpoint(callback(open_checkpoint, shared), [picker, temperature, n, seed], opened)
    inputs = [picker, label, temperature, n, seed]
    follow = [label.input, temperature.release, n.release, seed.submit, seed.blur]
    gr.on(
        follow,
        callback(redraw, shared),
        inputs,
        [*pictures, table, player],
        trigger_mode="always_last",  # a dragged slider or a typed seed: only the latest value is drawn
        api_visibility="private",
        concurrency_id=MODEL,
    )
    draw.click(callback(sample_priors, shared), inputs, [*pictures, table], api_name="sample", concurrency_id=MODEL)
    steps_button.click(
        callback(sample_steps, shared),
        [picker, label, temperature, seed],
        player,
        js=PLAY_ON_PRESS,
        api_name="sample_steps",
        concurrency_id=MODEL,
    )
