"""`python -m vqvae <command>`: train, evaluate (more commands join as the project grows)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .errors import VQVAEError
from .train import TrainEvent


def _train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train a VQ-VAE into a checkpoint folder",
        description="Train a VQ-VAE on a data source and save a checkpoint folder (config.json, "
        "vqvae.safetensors, history.json, metrics.json). Ctrl-C stops after the current step and saves.",
    )
    p.add_argument(
        "--preset",
        default="mnist",
        help="named settings: mnist (28x28 -> 7x7, K=512, D=64) "
        "or digits-tiny (8x8 digits, for tests) [default: mnist]",
    )
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write (or to resume)")
    p.add_argument(
        "--data", help="data source: mnist5k, digits, folder:PATH, idx:DIR or npz:PATH [default: the preset's]"
    )
    p.add_argument("--steps", type=int, help="stop after this many optimiser steps (total, counting a resumed run's)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of training (total)")
    p.add_argument(
        "--quantizer",
        choices=["ema", "loss"],
        help="codebook update: exponential moving "
        "averages (appendix A.1) or the codebook loss term of equation 3 [default: ema]",
    )
    p.add_argument("--K", type=int, dest="num_embeddings", help="number of codes in the codebook")
    p.add_argument("--D", type=int, dest="embedding_dim", help="dimension of each code")
    p.add_argument(
        "--init",
        choices=["uniform", "samples", "kmeans"],
        help="codebook initialisation: "
        "uniform random (the paper), or samples / k-means of the first batch's encoder outputs",
    )
    p.add_argument("--dead-code-steps", type=int, help="re-seed a code unused for this many steps (0: never)")
    p.add_argument("--cosine", action="store_true", help="l2-normalised codes and encoder outputs")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, dest="learning_rate", help="Adam learning rate (cosine-decayed to 5%%)")
    p.add_argument("--hidden", type=int, dest="hidden_channels", help="encoder/decoder channels")
    p.add_argument("--seed", type=int, help="seed for weights, data order and codebook init [default: 0]")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out exactly where it stopped")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")


def _evaluate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evaluate",
        help="measure a checkpoint on its held-out split",
        description="Held-out MSE, PSNR, SSIM, perplexity, codes used, dead codes, bits per image under "
        "the uniform prior, training time. Saves metrics.json in the folder.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vqvae",
        description="VQ-VAE (van den Oord et al. 2017): train, evaluate and inspect discrete latent codes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(commands)
    _evaluate_parser(commands)
    return parser


def _stop_on_signals() -> threading.Event:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step (and save)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _progress_bar() -> Callable[[TrainEvent], None]:
    bar = tqdm(total=1000, unit="", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", dynamic_ncols=True)

    def on_event(event) -> None:
        bar.n = int(event.progress * 1000)
        if event.kind == "log":
            m = event.metrics
            bar.set_description(f"step {event.step}")
            postfix = f"loss {m['loss']:.4f} rec {m['reconstruction_mse']:.5f}"
            if "perplexity" in m:
                postfix += f" ppl {m['perplexity']:.1f} used {100 * m.get('codes_used_fraction', 0):.1f}%"
            bar.set_postfix_str(postfix)
        bar.refresh()
        if event.kind == "end":
            bar.close()

    return on_event


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from . import checkpoint as ckpt
    from .config import QuantizerConfig, preset
    from .evaluate import evaluate_checkpoint
    from .train import train_vqvae

    if args.resume:
        config, train_config, _ = ckpt.load_config(args.out)
        if train_config is None:
            raise VQVAEError(f"{args.out} has no training settings to resume")
        changes = {k: v for k, v in (("steps", args.steps), ("minutes", args.minutes)) if v is not None}
        train_config = dataclasses.replace(train_config, **changes)
    else:
        chosen = preset(args.preset)
        config, train_config = chosen.vqvae, chosen.train
        q = {k: getattr(args, k) for k in ("num_embeddings", "embedding_dim", "init", "dead_code_steps")}
        q = {k: v for k, v in q.items() if v is not None}
        if args.quantizer:
            q["update"] = args.quantizer
        if args.cosine:
            q["cosine"] = True
        config.quantizer = QuantizerConfig(**(dataclasses.asdict(config.quantizer) | q))
        if args.hidden_channels is not None:
            config.model = dataclasses.replace(config.model, hidden_channels=args.hidden_channels)
        t = {k: getattr(args, k) for k in ("data", "batch_size", "learning_rate", "seed")}
        t = {k: v for k, v in t.items() if v is not None}
        if args.steps is not None or args.minutes is not None:
            t |= {"steps": args.steps, "minutes": args.minutes}
        train_config = dataclasses.replace(train_config, **t)
    stop = _stop_on_signals()
    result = train_vqvae(
        config, train_config, args.out, resume=args.resume, on_event=_progress_bar(), should_stop=stop.is_set
    )
    print(f"saved {result.folder} at step {result.step} ({result.elapsed_s:.0f} s of training)")
    if not args.no_eval:
        _print_metrics(evaluate_checkpoint(args.out))
    return 0


def _print_metrics(metrics: dict) -> None:
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(metrics)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (VQVAEError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
