"""`python -m vqvae bench --device D`: what one device does with this project.

- training images per second of the mnist preset and of the largest image preset (64x64 colour emoji,
  two levels), in each precision the device computes, at the preset's own batch (and, on a GPU, at a
  batch eight times larger, which a GPU needs to be kept busy);
- whether bf16 trains as well as fp32: the mnist preset trained the same number of steps from the same
  seed in each, and the held-out PSNR of both;
- the shipped learned priors' sampling latency (64 grids; a VQ-VAE-2's 16 images, decoded);
- the app's latency with its models on the device (bench/app.py, one call at a time).

Run on the CPU it is the reference a GPU's figures are divided by (bench/device-cpu.json).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..config import preset
from ..data import load_split
from ..errors import VQVAEError
from ..evaluate import reconstruction_metrics
from ..runtime import Runtime
from ..train import train_loop
from .prior import time_hierarchy
from .run import app_bench
from .training import ours_task, ours_throughput

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LARGEST = "emoji64-2level"  # the presets' largest images: 64x64 colour, two levels of codes
GPU_BATCH_FACTOR = 8


@dataclass
class DeviceBenchConfig:
    presets: tuple[str, ...] = ("mnist", LARGEST)
    warmup_steps: int = 5
    steps: int = 40  # timed steps per preset, precision and batch
    quality_steps: int = 300  # steps of the fp32 / bf16 comparison (the mnist preset)
    sample_repeats: int = 5
    app: bool = True
    app_repeats: int = 20
    quick: bool = False

    @classmethod
    def quick_run(cls, **changes: Any) -> DeviceBenchConfig:
        small = dict(presets=("mnist",), warmup_steps=2, steps=4, quality_steps=6, sample_repeats=1, app_repeats=2)
        return cls(**(small | {"quick": True} | changes))


def precisions(device: torch.device) -> list[str]:
    """The precisions this device trains in: fp32 and bf16 everywhere bf16 computes, fp16 on CUDA."""
    if device.type != "cuda":
        return ["fp32", "bf16"]
    return ["fp32"] + (["bf16"] if torch.cuda.is_bf16_supported() else []) + ["fp16"]


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_speed(config: DeviceBenchConfig, device: torch.device) -> dict[str, Any]:
    """Each preset's images/s in each precision, at its batch (and on a GPU a larger one too)."""
    found: dict[str, Any] = {}
    for name in config.presets:
        chosen = preset(name)
        model = chosen.vqvae.model
        try:
            split = load_split(chosen.train.data, model.image_size, model.in_channels)
        except (VQVAEError, OSError) as error:  # e.g. the emoji font is not installed here
            found[name] = {"error": str(error)}
            continue
        batches = [chosen.train.batch_size]
        if device.type == "cuda":
            batches.append(GPU_BATCH_FACTOR * chosen.train.batch_size)
        rows = {}
        for batch in batches:
            for precision in precisions(device):
                runtime = Runtime(device, precision)
                timed = ours_throughput(chosen, split, batch, config.warmup_steps, config.steps, runtime)
                row = {"images_per_s": timed.images_per_s, "step_ms": 1000 * timed.step_s}
                rows[f"batch_{batch}_{precision}"] = row
                log.info("%s batch %d %s: %.0f images/s", name, batch, precision, timed.images_per_s)
        found[name] = {"batch_size": chosen.train.batch_size, **rows}
    return found


def precision_quality(config: DeviceBenchConfig, device: torch.device) -> dict[str, Any]:
    """The mnist preset trained `quality_steps` steps from the same seed in fp32 and in bf16: held-out PSNR."""
    chosen = preset("mnist")
    model_config = chosen.vqvae.model
    split = load_split(chosen.train.data, model_config.image_size, model_config.in_channels)
    result: dict[str, Any] = {"preset": "mnist", "steps": config.quality_steps}
    for precision in ("fp32", "bf16"):
        task, train_config = ours_task(
            chosen, split, chosen.train.batch_size, steps=config.quality_steps, minutes=None, save_every=10**6
        )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            train_loop(task, train_config, Path(folder), runtime=Runtime(device, precision))
        _synchronise(device)
        result[f"{precision}_train_s"] = time.perf_counter() - start
        result[f"{precision}_psnr_db"] = reconstruction_metrics(task.model, split.test)["psnr_db"]
    result["difference_db"] = result["bf16_psnr_db"] - result["fp32_psnr_db"]
    return result


def sampling_speed(config: DeviceBenchConfig, device: torch.device) -> dict[str, Any]:
    """64 grids from the shipped mnist prior; 16 decoded images from the shipped VQ-VAE-2's priors."""
    found: dict[str, Any] = {}
    mnist = ROOT / "checkpoints" / "mnist"
    if (mnist / ckpt.PRIOR).exists():
        prior = ckpt.load_prior(mnist, device=device)
        labels = torch.arange(64) % prior.config.num_classes if prior.config.num_classes else None
        times = []
        for _ in range(config.sample_repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            prior.sample(64, labels=labels, seed=0)  # comes back to the CPU: the device is done
            times.append(time.perf_counter() - start)
        found["mnist_sample_64_s"] = statistics.median(times[1:])
    hierarchy = ROOT / "checkpoints" / LARGEST
    if (hierarchy / ckpt.CONFIG).exists():
        threads = torch.get_num_threads()
        timed = time_hierarchy(hierarchy, config.sample_repeats, threads=threads, device=device)
        found[f"{LARGEST}_sample_16_s"] = timed.sample_s
    return found


def app_latency(config: DeviceBenchConfig, device: torch.device) -> dict[str, Any]:
    """bench/app.py with the app's models on the device: each page's calls one at a time."""
    return app_bench(["--clients", "0", "--repeats", str(config.app_repeats), "--device", device.type])


def measure_device(device: torch.device, config: DeviceBenchConfig | None = None) -> dict[str, Any]:
    """Every device measure on `device` (runtime.pick_device's)."""
    config = config or DeviceBenchConfig()
    results: dict[str, Any] = {
        "device": describe(device),
        "settings": dataclasses.asdict(config),
        "training": training_speed(config, device),
        "precision": precision_quality(config, device),
        "sampling": sampling_speed(config, device),
    }
    if config.app:
        results["app"] = app_latency(config, device)
    return results
