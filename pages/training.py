"""Training: start a VQ-VAE (then prior) run from the browser and watch it learn."""

from __future__ import annotations

import secrets

import gradio as gr

from vqvae.app.runs import ACTIVE, RUN_PRESETS, RunSettings, RunStatus
from vqvae.config import PRIOR_MINUTES
from vqvae.config import preset as named_preset

from .common import Shared, callback, explain
from .figures import curves, note

TEXT = r"""
Train a new VQ-VAE here, in a background process, while the rest of the app keeps answering. Watch
the loss fall and the **perplexity** and **codes used** rise as the codebook spreads out, then the
learned prior's bits per latent fall. **Stop** ends the run after its current step and keeps the last
checkpoint. A finished run appears in the checkpoint picker at the top.
"""

OFF = r"""
Training is off in this public demo: every page here explores the models it ships with. To train
your own, run the app on your machine (`pip install -r requirements.txt && python app.py`), or ask
whoever serves this demo for its login.
"""

DATA_SOURCES = ["mnist5k", "digits", "fashion-mnist", "emoji"]
POLL_SECONDS = 1.0


def start_run(
    shared: Shared, name: str, preset: str, data: str, minutes, k, d, lr, prior, visitor: str = ""
) -> tuple[str, gr.Timer, str]:
    """Form values go to RunSettings as they are: it checks them and says what is wrong. The page
    starts polling the run. Behind a login the run belongs to this browser: `visitor` is its token
    (made here on its first run, kept in the browser), and only a Stop that sends it ends the run."""
    settings = RunSettings(
        name=(name or "").strip(),
        preset=preset,
        data=data or None,
        minutes=minutes,
        num_embeddings=k,
        embedding_dim=d,
        learning_rate=lr,
        prior_minutes=prior,
    )
    visitor = visitor or secrets.token_urlsafe(16)
    shared.runs.start(settings, owner=visitor if shared.owners else None)
    return f"started **{settings.name}**", gr.Timer(active=True), visitor


def preset_fields(name: str) -> tuple:
    """The form's data, K, D and learning rate set to a preset's own (its data only where the list offers it)."""
    chosen = named_preset(name)
    data = chosen.train.data
    return (
        data if data in DATA_SOURCES else gr.skip(),
        chosen.vqvae.quantizer.num_embeddings,
        chosen.vqvae.quantizer.embedding_dim,
        chosen.train.learning_rate,
    )


def stop_run(shared: Shared, visitor: str = "") -> str:
    if not shared.runs.status().active:
        return "no run is going"
    shared.runs.stop(owner=visitor or None)  # refused with a message when another browser started it
    return "stopping after the current step ..."


def _summary(status: RunStatus) -> str:
    if status.state == "idle":
        return "No run yet. Choose settings and press **Start**."
    doing = f"{status.phase} phase, step {status.step}" if status.active else f"{status.step} steps"
    text = f"**{status.name}**: {status.state}, {doing}"
    if status.active and not status.owned_by_you:
        text += " (started by another visitor: only they can stop it)"
    return text + (f"\n\n{status.message}" if status.message else "")


def _progress(status: RunStatus) -> str:
    """A bar for a run that is going (blue), finished (full, green) or stopped (grey, where it stopped);
    nothing before any run or after a failure (the summary says why)."""
    if status.active:
        percent = 100 * (status.progress or 0.0)
        return _bar(percent, "going") + f" {percent:.0f}% of the {status.phase} phase"
    if status.state == "finished":
        return _bar(100, "done") + " finished"
    if status.state == "stopped" and status.stopped_at:
        phase, progress = status.stopped_at
        return _bar(100 * progress, "stopped") + f" stopped at {100 * progress:.0f}% of the {phase} phase"
    return ""


def _bar(percent: float, kind: str) -> str:
    return f'<progress class="run-progress {kind}" max="100" value="{percent:.1f}"></progress>'


def _charts(status: RunStatus) -> tuple:
    """The run's curves, or a note in each chart that says why it is empty."""
    if status.vqvae_history:
        loss = curves(status.vqvae_history, ("loss",), "VQ-VAE: loss", y_title="loss")
        codebook = curves(status.vqvae_history, ("perplexity", "codes_used"), "VQ-VAE: perplexity and codes used")
    else:
        why = {"idle": "no run yet: curves appear here as a run trains"}.get(
            status.state, "waiting for the first logged step" if status.active else "this run logged no steps"
        )
        loss = codebook = note(why)
    if status.prior_history:
        prior = curves(status.prior_history, ("bits_per_latent",), "prior: bits per latent", y_title="bits per latent")
    else:
        prior = note(_no_prior(status), height=240)
    return loss, codebook, prior


def _no_prior(status: RunStatus) -> str:
    if status.state == "idle":
        return "the learned prior's bits per latent appear here once a run trains it"
    if not status.with_prior:
        return "this run trains no prior (prior minutes: 0)"
    if status.stopped_at and status.stopped_at[0] != "prior":
        return "the run was stopped before its prior phase"
    if status.active:
        return "the prior trains once the VQ-VAE is done"
    return "this run logged no prior steps"


def run_status(shared: Shared, seen: dict | None, visitor: str = "") -> tuple:
    """Asked when the page opens, then every second while a run is going (an open page polls nothing
    between runs, so idle tabs leave the queue to the model's calls): the run's state and progress;
    charts only when something in them changed, and the picker's list and the message under the
    buttons only when a run has just ended."""
    status = shared.runs.status(owner=visitor or None)
    seen = seen or {}
    now = {
        "name": status.name,
        "state": status.state,
        "rows": len(status.vqvae_history),
        "prior_rows": len(status.prior_history),
    }
    charts = _charts(status) if now != {key: seen.get(key) for key in now} else (gr.skip(),) * 3
    ended = seen.get("state") in ACTIVE and not status.active
    picker = gr.Dropdown(choices=shared.catalog.choices()) if ended else gr.skip()
    message = "" if ended else gr.skip()  # "stopping ..." has been answered by the summary
    return _summary(status), _progress(status), *charts, picker, now, message, gr.Timer(active=status.active)


def build(shared: Shared) -> None:
    if not shared.training:  # no form, no timer, no endpoint: nothing to start, stop or poll
        explain(OFF)
        return
    explain(TEXT)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            name = gr.Textbox(label="run name", value="my-run", elem_id="run-name")
            preset = gr.Dropdown(sorted(RUN_PRESETS), value="mnist", label="preset", elem_id="run-preset")
            data = gr.Dropdown(DATA_SOURCES, value="mnist5k", label="data", allow_custom_value=True, elem_id="run-data")
            minutes = gr.Slider(0.1, 30, value=2, step=0.1, label="VQ-VAE minutes", elem_id="run-minutes")
            k = gr.Number(value=512, precision=0, label="K (codes)", minimum=1, elem_id="run-k")
            d = gr.Number(value=64, precision=0, label="D (code dimension)", minimum=1, elem_id="run-d")
            lr = gr.Number(value=3e-3, label="learning rate")
            prior = gr.Slider(
                0, 30, value=PRIOR_MINUTES, step=0.5, label="prior minutes", info="0: no prior", elem_id="run-prior"
            )
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="start-run")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-run")
        with gr.Column(scale=3):
            message = gr.Markdown(elem_id="run-message")
            summary = gr.Markdown(elem_id="run-status")
            progress = gr.HTML(elem_id="run-progress")
            with gr.Row():
                loss = gr.Plot(show_label=False, elem_id="run-loss")
                vqvae = gr.Plot(show_label=False, elem_id="run-codebook")
            prior_plot = gr.Plot(show_label=False, elem_id="run-prior-chart")
    timer = gr.Timer(POLL_SECONDS, active=False)
    seen = gr.State(None)
    # this browser's token for the runs it starts, kept across reloads, sealed with a key of this server's
    visitor = gr.BrowserState("", storage_key="vqvae-explorer-visitor", secret=secrets.token_hex(16))
    inputs = [name, preset, data, minutes, k, d, lr, prior, visitor]
    preset.input(preset_fields, preset, [data, k, d, lr], api_visibility="private", show_progress="hidden")
    start.click(callback(start_run, shared), inputs, [message, timer, visitor], api_name="start_training")
    stop.click(callback(stop_run, shared), visitor, message, api_name="stop_training")
    outputs = [summary, progress, loss, vqvae, prior_plot, shared.picker, seen, message, timer]
    status = callback(run_status, shared)
    timer.tick(status, [seen, visitor], outputs, api_name="training_status", show_progress="hidden")
    shared.demo.load(status, [seen, visitor], outputs, api_visibility="private", show_progress="hidden")
