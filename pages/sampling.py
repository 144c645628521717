"""Sampling: decode codes drawn from the uniform, unigram and learned priors, side by side."""

from __future__ import annotations

import gradio as gr

from vqvae.config import PRIORS
from vqvae.errors import InputError

from .common import MODEL, Shared, callback, explain, inline_image, picture_file, show, tiled
from .figures import code_grid, top_codes

TEXT = r"""
The VQ-VAE is trained with a **uniform** prior over the $K$ codes: $\log_2 K$ bits per latent.
Drawing every code uniformly and decoding gives noise-like patches. The **unigram** prior draws each
code by how often it is used, still independently. The **learned** prior is a gated PixelCNN that
predicts each code from the codes above and to its left (and the class),
$p(z) = \prod_t p(z_t \mid z_{<t}, y)$, so its samples are digits. Same seed for all three.
"""

ANY_CLASS = "any"
TITLES = {"uniform": "uniform prior", "unigram": "unigram prior", "learned": "learned prior (PixelCNN)"}


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


def sample_priors(shared: Shared, choice: str, label: str, temperature: float, n: float, seed: float) -> tuple:
    explorer = shared.explorer(choice)
    y = _label(shared, choice, label)
    columns = 8 if n > 16 else 4
    drawn = explorer.compare(int(n), label=y, temperature=float(temperature), seed=int(seed))
    pictures, rows = [], []
    for name in PRIORS:
        if name not in drawn:
            pictures.append("")
            rows.append(f"| {TITLES[name]} | not trained | | |")
            continue
        samples = drawn[name]
        pictures.append(inline_image(tiled(samples.images, columns), f"samples from the {TITLES[name]}"))
        rows.append(
            f"| {TITLES[name]} | {explorer.heldout_bits[name]:.2f} | {samples.bits_per_latent:.2f} |"
            f" {samples.bits_per_latent * samples.indices[0].size:.0f} |"
        )
    table = (
        f"| prior | held-out bits / latent | samples: bits / latent under the {explorer.judge} prior"
        " | bits / image |\n"
        "|---|---|---|---|\n" + "\n".join(rows)
    )
    return (*pictures, table)


def sample_steps(shared: Shared, choice: str, label: str, temperature: float, seed: float) -> tuple:
    frames = shared.explorer(choice).sample_frames(_label(shared, choice, label), float(temperature), int(seed))
    state = {
        "images": list(frames.images),  # small; enlarged when shown
        "indices": frames.indices.tolist(),
        "top_codes": frames.top_codes.tolist(),
        "top_probs": frames.top_probs.tolist(),
    }
    last = len(frames.images) - 1
    return (state, gr.Slider(maximum=last, value=last), *show_step(shared, state, last))


def show_step(shared: Shared, state: dict | None, step: float) -> tuple:
    """The grid after `step` codes have been drawn, and what the prior thought of the next one."""
    if not state:
        return gr.skip(), gr.skip(), gr.skip()
    t = max(0, min(int(step), len(state["images"]) - 1))
    width = len(state["indices"][0][0])
    grid = code_grid(state["indices"][t], f"after {t} steps (-1: not drawn yet)")
    if t < len(state["top_codes"]):
        row, col = divmod(t, width)
        bars = top_codes(state["top_codes"][t], state["top_probs"][t], f"step {t + 1}: cell ({row}, {col})")
    else:
        bars = None
    return picture_file(show(state["images"][t])), grid, bars


def build(shared: Shared) -> None:
    picker = shared.picker
    explain(TEXT)
    with gr.Row():
        label = gr.Dropdown(
            [ANY_CLASS], value=ANY_CLASS, label="class (learned prior)", elem_id="sample-class", allow_custom_value=True
        )
        temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="temperature (0: most likely code)")
        n = gr.Slider(1, 64, value=16, step=1, label="samples")
        seed = gr.Number(value=0, precision=0, label="seed")
        draw = gr.Button("Sample", variant="primary", elem_id="sample-button")
    with gr.Row():
        pictures = []  # inline images: one reply carries all three pictures, no file downloads after it
        for name in PRIORS:
            with gr.Column(min_width=200):
                gr.Markdown(f"**{TITLES[name]}**")
                pictures.append(gr.HTML(elem_id=f"samples-{name}"))
    table = gr.Markdown(elem_id="sample-bits")
    gr.Markdown("### The learned prior, one code at a time")
    state = gr.State(None)
    with gr.Row():
        steps_button = gr.Button("Draw one sample step by step", elem_id="steps-button")
        step = gr.Slider(0, 49, value=0, step=1, label="step", elem_id="step-slider")
    with gr.Row():
        frame = gr.Image(
            label="decoded so far (unfilled cells drawn as background)",
            format="png",
            interactive=False,
            height=240,
            elem_id="step-image",
        )
        grid = gr.Plot(label="codes so far")
        bars = gr.Plot(label="next code")

    shared.on_checkpoint(callback(class_choices, shared), picker, label)
    inputs = [picker, label, temperature, n, seed]
    draw.click(callback(sample_priors, shared), inputs, [*pictures, table], api_name="sample", concurrency_id=MODEL)
    steps_inputs = [picker, label, temperature, seed]
    steps_button.click(
        callback(sample_steps, shared),
        steps_inputs,
        [state, step, frame, grid, bars],
        api_name="sample_steps",
        concurrency_id=MODEL,
    )
    step.change(
        callback(show_step, shared), [state, step], [frame, grid, bars], api_visibility="private", concurrency_id=MODEL
    )
