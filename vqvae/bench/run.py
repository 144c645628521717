"""`python -m vqvae bench`: every measure in one run, on this machine, ours beside the plain baseline."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt
from ..config import preset
from ..data import load_split
from . import machine, memory
from .prior import time_hierarchy, time_prior
from .refusals import time_refusals
from .training import (
    ours_step_flops,
    ours_throughput,
    ours_time_to_quality,
    plain_step_flops,
    plain_throughput,
    plain_time_to_quality,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results.json"
HIERARCHY = ROOT / "checkpoints" / "emoji64-2level"  # the shipped VQ-VAE-2 whose sampling is timed


@dataclass
class BenchConfig:
    """What one benchmark run measures, and for how long."""

    preset: str = "mnist"
    batch_size: int = 128  # images per training step, both sides (time to quality: the plain side)
    quality_batch_size: int | None = None  # ours to quality: None is the preset's own (mnist: 64)
    warmup_steps: int = 5
    steps: int = 60  # timed training steps per round
    rounds: int = 2  # ours and plain alternate; each side's best round counts (less exposed to other load)
    target_psnr_db: float = 22.0  # held-out PSNR that ends the time-to-quality runs
    ours_cap_s: float = 120.0  # ours gives up after this much training (the preset's two minutes)
    plain_cap_factor: float = 5.0  # the plain run gives up after this many times ours
    plain_cap_s: float = 300.0  # ...and in any case after this long
    eval_every: int = 10  # steps between held-out evaluations (not counted as training time)
    matmul_size: int = 2048
    prior_repeats: int = 10
    refusal_repeats: int = 5  # each broken checkpoint and image bomb refused this many times
    memory_steps: int = 20
    app: bool = True  # measure the app (bench/app.py, a child process) and merge its results under "app"
    app_repeats: int | None = None  # None: the script's own default
    quick: bool = False

    @classmethod
    def quick_run(cls, **changes: Any) -> BenchConfig:
        """Every measure, small: well under a minute (a smoke test of the benchmark itself)."""
        small = dict(
            warmup_steps=2, steps=8, rounds=1, ours_cap_s=5.0, plain_cap_s=5.0, eval_every=10,
            matmul_size=1024, prior_repeats=3, refusal_repeats=1, memory_steps=2, app_repeats=3, quick=True,
        )  # fmt: skip
        return cls(**(small | changes))


def _round(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    return value


def measure_training(config: BenchConfig) -> dict[str, Any]:
    chosen = preset(config.preset)
    model = chosen.vqvae.model
    split = load_split(chosen.train.data, model.image_size, model.in_channels)
    b = config.batch_size
    ours, plain = [], []
    for _ in range(config.rounds):
        ours.append(ours_throughput(chosen, split, b, config.warmup_steps, config.steps))
        plain.append(plain_throughput(chosen, split, b, config.warmup_steps, config.steps))
    ours_best = max(ours, key=lambda t: t.images_per_s)
    plain_best = max(plain, key=lambda t: t.images_per_s)
    throughput = {
        "ours_images_per_s": ours_best.images_per_s,
        "plain_images_per_s": plain_best.images_per_s,
        "ratio": ours_best.images_per_s / plain_best.images_per_s,
        "ours_step_ms": 1000 * ours_best.step_s,
        "plain_step_ms": 1000 * plain_best.step_s,
        "steps_timed": ours_best.steps,
    }
    log.info("throughput: %s", throughput)

    # ours from a fresh start as `python -m vqvae train` runs it: the preset's batch (64 for mnist,
    # chosen on 2 cores for wall-clock time); the plain side at the paper-style 128; and, for the
    # record, ours at 128 too
    target, every = config.target_psnr_db, config.eval_every
    ours_b = config.quality_batch_size or chosen.train.batch_size
    ours_ttq = ours_time_to_quality(chosen, split, ours_b, target, config.ours_cap_s, every)
    ours_at_b = ours_ttq if ours_b == b else ours_time_to_quality(chosen, split, b, target, config.ours_cap_s, every)
    ours_s = ours_ttq.train_s if ours_ttq.reached else config.ours_cap_s
    plain_cap = min(config.plain_cap_s, config.plain_cap_factor * ours_s)
    plain_ttq = plain_time_to_quality(chosen, split, b, target, plain_cap, every)
    both = ours_ttq.reached and plain_ttq.reached
    time_to_quality = {
        "target_psnr_db": target,
        "ours_batch_size": ours_b,
        "plain_batch_size": b,
        "ours": dataclasses.asdict(ours_ttq),
        "ours_at_plain_batch": dataclasses.asdict(ours_at_b),
        "plain": dataclasses.asdict(plain_ttq),
        "speedup": plain_ttq.train_s / ours_ttq.train_s if both else None,
    }
    log.info("time to quality: %s", time_to_quality)

    flops = ours_step_flops(chosen, split, b)
    peak = machine.matmul_gflops(config.matmul_size)
    achieved = flops / ours_best.step_s / 1e9
    peak_fraction = {
        "step_gflop": flops / 1e9,
        "plain_step_gflop": plain_step_flops(chosen, split, b) / 1e9,
        "ours_gflops": achieved,
        "plain_gflops": flops / plain_best.step_s / 1e9,  # the same useful work per step
        "matmul_gflops": peak,
        "matmul_size": config.matmul_size,
        "fraction": achieved / peak,
    }
    peaks = memory.measure(split.train.images, config.memory_steps, b)
    memory_mb = {
        "ours_peak_rss_mb": peaks["ours"]["peak_rss_mb"],
        "plain_peak_rss_mb": peaks["plain"]["peak_rss_mb"],
        "ours_start_rss_mb": peaks["ours"]["start_rss_mb"],  # the same process just before training (None: unknown)
        "plain_start_rss_mb": peaks["plain"]["start_rss_mb"],
        "steps": config.memory_steps,
    }
    return {
        "throughput": throughput,
        "time_to_quality": time_to_quality,
        "peak_fraction": peak_fraction,
        "memory": memory_mb,
    }


def measure_app(config: BenchConfig) -> dict[str, Any]:
    """bench/app.py in a child process: cold start, the first answer, each endpoint's
    p50 / p95 one call at a time and with 10 clients at once, and the server's peak memory."""
    options = [] if config.app_repeats is None else ["--repeats", str(config.app_repeats)]
    if config.quick:
        options += ["--clients", "3", "--rounds", "1"]
    return app_bench(options)


def app_bench(options: list[str]) -> dict[str, Any]:
    """`python -m vqvae.bench.app --json OPTIONS` in a child process: its results, or {"error": why}."""
    command = [sys.executable, "-m", "vqvae.bench.app", "--json", *options]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        return {"error": str(error)}


def run(config: BenchConfig) -> dict[str, Any]:
    """Measure everything the config asks for; returns the results as plain JSON-able data."""
    results: dict[str, Any] = {
        "machine": machine.info(),
        "settings": dataclasses.asdict(config),
        "training": measure_training(config),
        "prior": dataclasses.asdict(time_prior(ROOT / "checkpoints" / "mnist", config.prior_repeats)),
        "refusals": {
            kind: [dataclasses.asdict(refusal) for refusal in refusals]
            for kind, refusals in time_refusals(ROOT / "checkpoints" / "mnist", config.refusal_repeats).items()
        },
    }
    if (HIERARCHY / ckpt.CONFIG).exists():
        repeats = max(1, config.prior_repeats // 2)
        results["hierarchy"] = dataclasses.asdict(time_hierarchy(HIERARCHY, repeats))
    if config.app:
        results["app"] = measure_app(config)
    return _round(results)


def save(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def load(path: Path = RESULTS) -> dict[str, Any]:
    return json.loads(path.read_text())
