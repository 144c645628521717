"""`python -m vqvae <command>`: train, evaluate, analyse, reconstruct, train-prior, sample, convert, bench.

Each command imports what it needs (torch among it) only after its settings are checked, so a
bad flag, a missing data folder or a batch larger than the data is refused in a fraction of a
second, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from .config import (
    DEVICES,
    PRECISIONS,
    PRESETS,
    PRIOR_BATCH_SIZE,
    PRIOR_LEARNING_RATE,
    PRIOR_MINUTES,
    TrainConfig,
    VQVAEConfig,
    preset_with,
    prior_training,
)
from .errors import VQVAEError
from .files import ANALYSIS, CONFIG
from .sources import SOURCES, check_source
from .stopping import SignalStop

if TYPE_CHECKING:
    from .runtime import Runtime
    from .train import TrainEvent, TrainResult


def _train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train a VQ-VAE into a checkpoint folder",
        description="Train a VQ-VAE on a data source and save a checkpoint folder (config.json, "
        "vqvae.safetensors, history.json, metrics.json). Ctrl-C or SIGTERM stops after the current step, saves, "
        "and exits with status 130 or 143 (128 + the signal's number); --resume continues from there.",
    )
    p.add_argument(
        "--preset",
        default="mnist",
        help=f"named settings: {', '.join(PRESETS)} (docs/command-line.md lists them) [default: mnist]",
    )
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write (or to resume)")
    p.add_argument("--data", help=f"data source: {SOURCES} [default: the preset's]")
    p.add_argument("--steps", type=int, help="stop after this many optimiser steps (total, counting a resumed run's)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of training (total)")
    p.add_argument(
        "--quantizer",
        dest="update",
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
    p.add_argument("--dead-code-steps", type=int, help="re-seed a code unused for this many steps (0: no restarts)")
    p.add_argument(
        "--dead-code-usage",
        type=float,
        help="also re-seed a code whose recent usage is below this fraction of the mean code's (0: off)",
    )
    p.add_argument("--cosine", action="store_const", const=True, help="l2-normalised codes and encoder outputs")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, dest="learning_rate", help="Adam learning rate (cosine-decayed to 5%%)")
    p.add_argument("--hidden", type=int, dest="hidden_channels", help="encoder/decoder channels")
    p.add_argument("--seed", type=int, help="seed for weights, data order and codebook init [default: 0]")
    p.add_argument("--save-every", type=int, help="save a resumable checkpoint every this many steps [default: 500]")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out exactly where it stopped")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation and analysis at the end")
    p.add_argument("--no-umap", action="store_true", help="analyse with PCA only (UMAP is slow to start)")
    p.add_argument(
        "--stream",
        action="store_true",
        default=None,
        help="read a folder:PATH source from a memory-mapped cache of its decoded images, batch by batch, rather "
        "than load it whole [default: only a folder too large to load]",
    )
    p.add_argument("--workers", type=int, default=2, help="processes that read streamed batches ahead [default: 2]")
    _runtime_flags(p)


def _device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where to compute: a CUDA GPU if there is one, else Apple's MPS, else the CPU [default: auto]",
    )


def _device(args: argparse.Namespace) -> Any:
    """The torch.device of --device, refused with a clear message when it is not here."""
    from .runtime import pick_device

    return pick_device(args.device)


def _runtime_flags(p: argparse.ArgumentParser) -> None:
    _device_flag(p)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="of the networks' arithmetic, by torch.autocast (the codebook and losses stay float32): bf16 on a "
        "GPU that has it, else fp32; fp16 only on CUDA [default: auto]",
    )


def _evaluate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evaluate",
        help="measure a checkpoint on its held-out split",
        description="Held-out MSE, PSNR, SSIM, perplexity, codes used, dead codes, bits per image under "
        "the uniform prior, training time. Saves metrics.json in the folder.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _device_flag(p)


def _analyse_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "analyse",
        help="precompute what the app shows (codebook projections, usage, tiles, exemplars)",
        description="Encode the held-out split and save analysis.safetensors in the folder: the codebook in 2-D "
        "(PCA, and UMAP unless --no-umap), code usage overall and per class, each code's tile and its nearest "
        "held-out patches. `train` runs it at the end.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder")
    p.add_argument("--no-umap", action="store_true", help="PCA only (UMAP is slow to start)")
    _device_flag(p)


def _reconstruct_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "reconstruct",
        help="save held-out images above their reconstructions as one PNG",
        description="Encode held-out images to codes, decode the codes, and save inputs (top row) "
        "above reconstructions (bottom row).",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder")
    p.add_argument("--n", type=int, default=16, help="how many held-out images [default: 16]")
    p.add_argument("--scale", type=int, default=3, help="enlarge each pixel this many times [default: 3]")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    _device_flag(p)


def _train_prior_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train-prior",
        help="fit the learned prior (gated PixelCNN) to a checkpoint's codes",
        description="Encode the training split once (kept as codes.safetensors), fit a gated, class-conditional "
        "PixelCNN to the code grids and save prior.safetensors in the folder. With labelled data it also "
        "trains, once, the classifier of its classes that `evaluate` uses to score samples. Ctrl-C or SIGTERM "
        "stops after the current step, saves, and exits with status 130 or 143.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder of a trained VQ-VAE")
    p.add_argument(
        "--level",
        help="a VQ-VAE-2's level whose prior to fit (top, bottom, ...); the level below the top hears the codes "
        "above it [default: every level, top first]",
    )
    p.add_argument("--steps", type=int, help="stop after this many steps (total)")
    p.add_argument(
        "--minutes", type=float, help=f"stop after this many minutes of training (total) [default: {PRIOR_MINUTES:g}]"
    )
    p.add_argument("--unconditional", action="store_true", help="ignore the labels: model p(z), not p(z | class)")
    p.add_argument("--layers", type=int, dest="num_layers", help="gated layers [default: 8]")
    p.add_argument("--hidden", type=int, dest="hidden_channels", help="channels of both stacks [default: 64]")
    p.add_argument("--dropout", type=float, help="dropout on each gated layer [default: 0]")
    p.add_argument(
        "--attention-heads",
        type=int,
        dest="attention_heads",
        help="heads of a causal self-attention block over the stacks' features (0: none) [default: 0]",
    )
    p.add_argument("--batch-size", type=int, help=f"grids per step [default: {PRIOR_BATCH_SIZE}]")
    p.add_argument(
        "--lr", type=float, dest="learning_rate", help=f"Adam learning rate [default: {PRIOR_LEARNING_RATE:g}]"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data order [default: 0]")
    p.add_argument("--save-every", type=int, help="save a resumable checkpoint every this many steps [default: 500]")
    p.add_argument("--resume", action="store_true", help="continue the prior run saved in the folder")
    _runtime_flags(p)


def _sample_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "sample",
        help="draw code grids from a prior and save their decoded images as a PNG grid",
        description="Sample codes from the uniform, unigram or learned prior and decode them with the VQ-VAE.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder")
    p.add_argument("--prior", choices=["learned", "unigram", "uniform"], default="learned", help="[default: learned]")
    p.add_argument("--n", type=int, default=64, help="how many samples [default: 64]")
    p.add_argument("--label", type=int, help="class to ask the learned prior for [default: every class in turn]")
    p.add_argument(
        "--temperature",
        default="1",
        help="0 = most likely code each step; for a VQ-VAE-2 one value for every level or one per level, top "
        "first, comma-separated (1,0.5) [default: 1]",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="same seed, same samples (a VQ-VAE-2's level i: seed + i) [default: 0]"
    )
    p.add_argument("--scale", type=int, default=3, help="enlarge each pixel this many times [default: 3]")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    _device_flag(p)


def _convert_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "convert",
        help="say a recording's words in another speaker's voice (a speech model)",
        description="Encode a WAV recording to a speech model's codes and decode them with another training "
        "speaker's voice (van den Oord et al. 2017, section 4.3); writes a 16-kHz WAV file.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder of a speech model")
    p.add_argument("--wav", type=Path, required=True, help="the recording to convert (a WAV file, any rate)")
    p.add_argument("--speaker", required=True, help="the voice to speak in: a training speaker's name or number")
    p.add_argument("--out", type=Path, required=True, help="WAV file to write")
    _device_flag(p)


def _bench_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "bench",
        help="measure training, prior and app speed beside a plain baseline",
        description="On this machine, in one run: VQ-VAE training throughput (batch 128, the mnist preset) of our "
        "trainer and of a plain paper-style step, the training time of each to reach 22 dB held-out PSNR, the "
        "step's GFLOP/s against a large float32 matmul's, training peak memory, the prior's log-prob throughput "
        "and sampling latency, and the app's latency (vqvae/bench/app.py). Writes bench/results.json and "
        "prints a Markdown table.",
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    p.add_argument("--quick", action="store_true", help="every measure, small (under a minute); writes no file")
    p.add_argument("--no-app", action="store_true", help="leave out the app's latency")
    p.add_argument("--out", type=Path, help="where to write the results [default: bench/results.json; none if --quick]")
    p.add_argument("--table", action="store_true", help="measure nothing: print the table of the saved results")
    p.add_argument(
        "--device",
        choices=DEVICES,
        help="measure this device instead (training images/s of the mnist and largest presets in each precision, "
        "bf16 against fp32 held-out PSNR, sampling and app latency; vqvae/bench/device.py), written to "
        "bench/device-TYPE.json [default: the comparison with the baseline above, on the CPU]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vqvae",
        description="VQ-VAE (van den Oord et al. 2017): train, evaluate and inspect discrete latent codes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(commands)
    _evaluate_parser(commands)
    _analyse_parser(commands)
    _reconstruct_parser(commands)
    _train_prior_parser(commands)
    _sample_parser(commands)
    _convert_parser(commands)
    _bench_parser(commands)
    return parser


BAR_FORMAT = "{l_bar}{bar}| {elapsed}<{remaining} {postfix}"


def _progress_bar() -> Callable[[TrainEvent], None]:
    bars: list[tqdm] = []  # made at the first event, so an error before training draws no bar

    def on_event(event: TrainEvent) -> None:
        if not bars:
            bars.append(tqdm(total=1000, bar_format=BAR_FORMAT, dynamic_ncols=True))
        bar = bars[0]
        bar.n = int(event.progress * 1000)
        if event.kind == "log":
            m = event.metrics
            bar.set_description(f"step {event.step}")
            postfix = f"loss {m['loss']:.4f}"
            if "reconstruction_mse" in m:
                postfix += f" rec {m['reconstruction_mse']:.5f}" + _level_figures(m)
            if "bits_per_latent" in m:
                postfix += f" {m['bits_per_latent']:.3f} bits/latent"
            bar.set_postfix_str(postfix)
        bar.refresh()
        if event.kind == "end":
            bar.close()

    return on_event


def _level_figures(m: dict) -> str:
    """Perplexity and codes used of each level in a training log row: "ppl 301.2 used 98.4%", or for a
    hierarchy "top ppl 301.2 used 98.4% bottom ...". The levels are read off the row's keys."""
    prefixes = [key[: -len("perplexity")] for key in m if key.endswith("perplexity")]
    shown = ""
    for prefix in prefixes:
        name = prefix.rstrip("_")
        shown += f" {name + ' ' if name else ''}ppl {m[prefix + 'perplexity']:.1f}"
        shown += f" used {100 * m[prefix + 'codes_used_fraction']:.1f}%"
    return shown


QUANTIZER_FLAGS = ("num_embeddings", "embedding_dim", "update", "init", "dead_code_steps", "dead_code_usage", "cosine")
MODEL_FLAGS = ("hidden_channels",)
TRAIN_FLAGS = ("data", "batch_size", "learning_rate", "seed", "save_every", "steps", "minutes")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _run_settings(args: argparse.Namespace) -> tuple[VQVAEConfig, TrainConfig]:
    """The preset with the flags given on top; on --resume, the folder's own settings (length may grow)."""
    if args.resume:
        if not (args.out / CONFIG).is_file():
            raise VQVAEError(f"{args.out} holds no run to resume ({CONFIG} is missing); start one without --resume")
        from .checkpoint import load_config

        config, train_config = load_config(args.out)[1:3]
        if train_config is None:
            raise VQVAEError(f"{args.out} has no training settings to resume")
        _same_as_saved(args, {**vars(config.model), **vars(config.quantizer), **vars(train_config)})
        return config, dataclasses.replace(train_config, **_length(args))  # a length given replaces both

    def flags(names: tuple[str, ...]) -> dict:
        return {name: getattr(args, name) for name in names}  # None where not given: preset_with skips it

    chosen = preset_with(args.preset, flags(MODEL_FLAGS), flags(QUANTIZER_FLAGS), flags(TRAIN_FLAGS))
    return chosen.vqvae, chosen.train


def _same_as_saved(args: argparse.Namespace, saved: dict[str, Any], names: tuple[str, ...] = ()) -> None:
    """A resume continues the folder's run as it was set up: a setting given that differs from it is refused
    (only the length may change)."""
    names = names or MODEL_FLAGS + QUANTIZER_FLAGS + TRAIN_FLAGS
    for name in names:
        given = getattr(args, name, None)
        if name not in ("steps", "minutes") and given is not None and name in saved and given != saved[name]:
            raise VQVAEError(
                f"{name} = {given!r} differs from the {saved[name]!r} the run was started with; a resume keeps the "
                "folder's settings (only --steps or --minutes may change). Start a new run to change it."
            )


def _length(args: argparse.Namespace) -> dict:
    """--steps and --minutes as given (0 and negatives too, for TrainConfig to refuse); {} if neither. The
    length is one setting: either given replaces both (a run resumed with --steps 10000 is not still held to
    the minutes it first ran for)."""
    if args.steps is None and args.minutes is None:
        return {}
    return {"steps": args.steps, "minutes": args.minutes}


def _stopped(stop: SignalStop, saved: str, resume: str, shown: bool = True) -> int:
    if shown:  # by rank 0 alone in a data-parallel run
        print(f"stopped by {stop.name}: {saved}. Continue with: {resume}")
    return stop.exit_status


def cmd_train(args: argparse.Namespace) -> int:
    config, train_config = _run_settings(args)
    check_source(train_config.data, train_config.batch_size)
    if not 0 <= args.workers <= 64:
        raise VQVAEError("--workers must be between 0 and 64")
    from .jobs import Job, run

    with _process(args, train_config.batch_size) as runtime, SignalStop() as stop:
        job = Job(
            args.out,
            config,
            train_config,
            resume=args.resume,
            evaluate=not args.no_eval,
            analyse=not args.no_eval,
            with_umap=not args.no_umap,
            runtime=runtime,
            stream=args.stream,
            workers=args.workers,
        )
        outcome = run(job, _CommandLine(stop, args.out, runtime.shard.main), stop)
    if outcome.stopped:
        resume = f"python -m vqvae train --out {args.out} --resume"
        return _stopped(stop, _saved(outcome.vqvae), resume, runtime.shard.main)
    return 0


@contextlib.contextmanager
def _process(args: argparse.Namespace, batch_size: int) -> Iterator[Runtime]:
    """This process's device, precision and rank (torchrun's variables), checked before anything is
    written; in a data-parallel run, in the run's process group until the command ends."""
    from . import distributed
    from .runtime import pick_runtime

    shard = distributed.shard_from_environment()
    shard.check_batch(batch_size)
    runtime = pick_runtime(args.device, args.precision, shard)
    distributed.join(shard, runtime.device)
    try:
        yield runtime
    except RuntimeError as error:
        if shard.world_size == 1:
            raise
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VQVAEError(
            f"process {shard.rank} of the run stopped: {first}. When another process ends (killed, out of memory), "
            "the others end too; the folder keeps its last complete save, which --resume continues"
        ) from error
    finally:
        distributed.leave()


def _saved(result: TrainResult, what: str = "") -> str:
    """ "saved FOLDER at step N (...)", or with what="the prior" "saved the prior in FOLDER ..."."""
    where = f"{what} in {result.folder}" if what else str(result.folder)
    return f"saved {where} at step {result.step} ({result.elapsed_s:.0f} s of training)"


class _CommandLine:
    """A job's progress on the terminal: a tqdm bar per training loop, a line when a step is done; nothing
    from the ranks after the first of a data-parallel run. (A `jobs.Progress`; defined without importing
    jobs, which loads torch.)"""

    def __init__(self, stop: SignalStop, folder: Path, shown: bool = True):
        self.stop, self.folder, self.shown = stop, folder, shown

    def phase(self, phase: str, note: str) -> None:
        if phase == "classifier" and self.shown:
            print(f"{note} ...")

    def events(self, phase: str) -> Callable[[TrainEvent], None]:
        return _progress_bar()

    def done(self, phase: str, result: Any) -> None:
        if not self.shown:
            return
        if phase == "vqvae" and not self.stop():
            print(_saved(result))
        elif phase == "prior" and not self.stop():
            print(_saved(result, "the prior"))
        elif phase == "evaluate":
            _print_metrics(result)
        elif phase == "analyse":
            print(f"saved the analysis the app shows in {self.folder}")


def _print_metrics(metrics: dict) -> None:
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, device=_device(args))
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(metrics)
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from .analysis import analyse_checkpoint

    analyses = analyse_checkpoint(args.checkpoint, with_umap=not args.no_umap, device=_device(args))
    first = next(iter(analyses.values()))
    projections = " and ".join(first.projections)
    levels = "" if None in analyses else f" of each level ({', '.join(analyses)})"
    print(f"wrote {args.checkpoint / ANALYSIS} ({projections}{levels}; {len(first.images)} held-out images)")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 256:
        raise VQVAEError("--n must be between 1 and 256")
    from .checkpoint import load_checkpoint
    from .data import load_split
    from .evaluate import reconstruction_pairs
    from .images import grid

    loaded = load_checkpoint(args.checkpoint, _device(args))
    if loaded.data.speaker_names:
        raise VQVAEError(f"{args.checkpoint} is a speech model: hear its reconstructions with `convert`")
    model_config = loaded.config.model
    split = load_split(loaded.train_config.data, model_config.image_size, model_config.in_channels)
    pairs = reconstruction_pairs(loaded.model, split.test, args.n)
    grid(pairs, columns=min(args.n, len(split.test)), scale=args.scale).save(args.out)
    print(f"wrote {args.out}")
    return 0


def _prior_settings(args: argparse.Namespace) -> TrainConfig:
    """How the prior trains: the flags on the defaults (checked before torch loads), or on --resume
    the folder's own settings (of --level, or of the first level whose prior was begun)."""
    if args.resume:
        if not (args.checkpoint / CONFIG).is_file():
            raise VQVAEError(f"{args.checkpoint} holds no checkpoint ({CONFIG} is missing)")
        from .checkpoint import load_config, read_config, read_prior_settings
        from .files import prior_stem

        every = getattr(load_config(args.checkpoint).vqvae, "level_names", [None])
        levels = [args.level] if args.level else list(every)
        begun = [level for level in levels if prior_stem(level) in read_config(args.checkpoint)] or levels
        prior, saved = read_prior_settings(args.checkpoint, begun[0])
        if saved is None:
            raise VQVAEError(f"{args.checkpoint} has no prior training settings to resume")
        settings = ("num_layers", "hidden_channels", "dropout", "attention_heads", "batch_size", "learning_rate")
        _same_as_saved(args, {**vars(prior), **vars(saved)}, settings + ("save_every",))
        return dataclasses.replace(saved, **_length(args))  # a length given replaces both
    checked = prior_training(
        "", args.seed, **_given(args, ("batch_size", "learning_rate", "save_every")), **_length(args)
    )
    from .checkpoint import load_config

    vqvae_training = load_config(args.checkpoint).train
    if vqvae_training is None:
        raise VQVAEError(f"{args.checkpoint} does not say what data its VQ-VAE was trained on")
    return dataclasses.replace(checked, data=vqvae_training.data)


def cmd_train_prior(args: argparse.Namespace) -> int:
    train_config = _prior_settings(args)
    from .jobs import Job, PriorJob, run
    from .prior_training import check_level

    if args.level is not None:
        from .checkpoint import load_config

        check_level(load_config(args.checkpoint).vqvae, args.level)
    settings = _given(args, ("num_layers", "hidden_channels", "dropout", "attention_heads"))
    levels = None if args.level is None else (args.level,)
    prior = PriorJob(train_config, settings, conditional=not args.unconditional, resume=args.resume, levels=levels)
    with _process(args, train_config.batch_size) as runtime, SignalStop() as stop:
        job = Job(args.checkpoint, evaluate=False, analyse=False, prior=prior, runtime=runtime)
        outcome = run(job, _CommandLine(stop, args.checkpoint, runtime.shard.main), stop)
    if outcome.stopped:
        level = "" if args.level is None else f" --level {args.level}"
        resume = f"python -m vqvae train-prior {args.checkpoint}{level} --resume"
        return _stopped(stop, _saved(outcome.prior, "the prior"), resume, runtime.shard.main)
    return 0


def _temperatures(text: str, levels: int) -> list[float]:
    """--temperature: one value for every level, or one per level, top first."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise VQVAEError(f"--temperature must be a number or numbers separated by commas, not {text!r}") from error
    if len(values) not in (1, levels):
        raise VQVAEError(f"--temperature takes one value, or one for each of the {levels} levels, not {len(values)}")
    return values * levels if len(values) == 1 else values


def cmd_sample(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 1024:
        raise VQVAEError("--n must be between 1 and 1024")
    import torch

    from .checkpoint import load_checkpoint
    from .images import grid
    from .sampling import sample_images

    loaded = load_checkpoint(args.checkpoint, _device(args))
    if loaded.data.speaker_names:
        return _sample_speech(args, loaded)
    levels = len(getattr(loaded.config, "level_names", [None]))
    temperatures = _temperatures(args.temperature, levels)
    images = sample_images(loaded, args.prior, args.n, args.label, temperatures, args.seed)
    columns = len(loaded.data.class_names) or 8  # one column per class, whichever the prior
    with torch.inference_mode():
        grid(images, columns=min(args.n, columns), scale=args.scale).save(args.out)
    print(f"wrote {args.out}")
    return 0


def _sample_speech(args: argparse.Namespace, loaded: Any) -> int:
    """A speech model's samples: words drawn from its prior, decoded in its training speakers' voices in
    turn, one after another in one WAV file."""
    from .speech.sampling import sample_utterances

    temperature = _temperatures(args.temperature, 1)[0]
    drawn = sample_utterances(loaded, args.prior, args.n, args.label, temperature, args.seed)
    _write_wav(args.out, drawn.joined())
    print(f"wrote {args.out}: {args.n} utterances ({', '.join(drawn.said[:8])}{', ...' if args.n > 8 else ''})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.device is not None:
        return _bench_device(args)
    if args.table:
        print(bench.table(bench.load(args.out or bench.RESULTS)))
        return 0
    config = bench.BenchConfig.quick_run() if args.quick else bench.BenchConfig()
    results = bench.run(dataclasses.replace(config, app=not args.no_app))
    out = args.out or (None if args.quick else bench.RESULTS)
    if out is not None:
        bench.save(results, out)
    print(json.dumps(results) if args.json else bench.table(results))
    return 0


def _write_wav(path: Path, wave: Any) -> None:
    """A speech model's sound (T,) written atomically as a 16-kHz, 16-bit WAV file."""
    from .atomic import atomic_write_bytes
    from .speech.synth import SAMPLE_RATE
    from .speech.wav import wav_bytes

    atomic_write_bytes(path, wav_bytes(wave.numpy(), SAMPLE_RATE))


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .speech.convert import convert_file

    loaded = load_checkpoint(args.checkpoint, _device(args))
    if not loaded.data.speaker_names:
        raise VQVAEError(f"{args.checkpoint} is not a speech model, so it has no voices to convert to")
    done = convert_file(loaded, args.wav, args.speaker)
    _write_wav(args.out, done.wave)
    print(f"wrote {args.out}: {args.wav.name} in the voice of {done.speaker} ({done.indices.numel()} codes)")
    return 0


def _bench_device(args: argparse.Namespace) -> int:
    from . import bench
    from .bench.device import DeviceBenchConfig, measure_device

    chosen = _device(args)
    config = DeviceBenchConfig.quick_run() if args.quick else DeviceBenchConfig()
    results = measure_device(chosen, dataclasses.replace(config, app=not args.no_app))
    out = args.out or (None if args.quick else bench.RESULTS.parent / f"device-{chosen.type}.json")
    if out is not None:
        bench.save(results, out)
    cpu = bench.RESULTS.parent / "device-cpu.json"  # the reference a GPU's figures are divided by
    reference = bench.load(cpu) if chosen.type != "cpu" and cpu.exists() else None
    print(json.dumps(results) if args.json else bench.device_table(results, reference))
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "analyse": cmd_analyse,
    "reconstruct": cmd_reconstruct,
    "train-prior": cmd_train_prior,
    "sample": cmd_sample,
    "convert": cmd_convert,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (VQVAEError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; a checkpoint folder keeps its last complete save", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
