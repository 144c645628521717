"""Codebook usage: how many codes the held-out data uses, how evenly, by which class, and over training."""

from __future__ import annotations

import gradio as gr

from .common import Shared, callback, explain
from .figures import curves, note, usage_bars, usage_by_class

FOLLOWS_LEVEL = True  # shows one grid of codes: a VQ-VAE-2's chosen level
TEXT = r"""
A codebook is only as big as the part of it that is used. **Perplexity**
$\exp(-\sum_k p_k \log p_k)$ of the code-usage distribution $p$ is $K$ when all $K$ codes are used
evenly and 1 when the codebook has collapsed to one code. A **dead code** is never chosen by any
held-out latent: it costs memory and teaches the decoder nothing.
"""

HISTORY_KEYS = ("perplexity", "codes_used")


def show_usage(shared: Shared, choice: str, level: str | None = None) -> tuple:
    explorer = shared.explorer(choice, level)
    summary = explorer.usage_summary()
    order = explorer.usage_order()
    counts = summary["counts"]
    k = summary["num_embeddings"]
    of_level = f"the {explorer.level} level's " if explorer.level else ""
    stats = (
        f"{of_level.capitalize()}**K** = {k} codes · **used** on the held-out split: {summary['codes_used']} "
        f"({100 * summary['codes_used'] / k:.1f}%) · **dead**: {summary['dead_codes']} · "
        f"**perplexity** {summary['perplexity']:.1f} of at most {k} · {summary['latents']:,} latents counted"
    )
    bars = usage_bars([counts[c] for c in order], order)
    leaning = explorer.class_specific_codes()
    classes = (
        usage_by_class(leaning.shares, leaning.codes, explorer.class_names)
        if leaning.codes
        else note("no class labels in this checkpoint's data: nothing to split by class")
    )
    history = explorer.history
    keys = tuple(key if explorer.level is None else f"{explorer.level}_{key}" for key in HISTORY_KEYS)
    training = (
        curves(history, keys, f"Perplexity and codes used during training{_of(explorer.level)}", k, "codes")
        if history
        else note("no training history saved with this checkpoint")
    )
    return stats, bars, classes, training


def _of(level: str | None) -> str:
    return "" if level is None else f", {level} level"


def build(shared: Shared) -> None:
    explain(TEXT)
    stats = gr.Markdown(elem_id="usage-stats")
    bars = gr.Plot(show_label=False, elem_id="usage-bars")
    classes = gr.Plot(show_label=False, elem_id="usage-classes")
    training = gr.Plot(show_label=False, elem_id="usage-training")
    outputs = [stats, bars, classes, training]
    shared.on_checkpoint(
        callback(show_usage, shared),
        [shared.picker, shared.level],
        outputs,
        levels=True,
        api_name="usage",
        api_visibility="public",
    )
