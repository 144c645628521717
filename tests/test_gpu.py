"""On a CUDA GPU (scripts/gpu_check.sh runs these; elsewhere they are skipped): every command computes on the
GPU, in each precision, and what it writes is the same device-free folder a CPU reads and resumes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.__main__ import main
from vqvae.app.explorer import Explorer
from vqvae.config import preset
from vqvae.evaluate import evaluate_checkpoint
from vqvae.runtime import Runtime
from vqvae.train import train_vqvae

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "digits-tiny"]
GPU = torch.device("cuda", 0)


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory) -> Path:
    """digits-tiny trained on the GPU (bf16, the default there), then its prior and classifier."""
    out = tmp_path_factory.mktemp("gpu") / "run"
    assert main(["train", *TINY, "--out", str(out), "--steps", "60", "--device", "cuda", "--no-umap"]) == 0
    assert main(["train-prior", str(out), "--steps", "40", "--batch-size", "32", "--device", "cuda"]) == 0
    return out


def test_a_run_trained_on_the_gpu_evaluates_alike_on_the_gpu_and_the_cpu(gpu_run):
    on_gpu = evaluate_checkpoint(gpu_run, save=False, device=GPU)
    on_cpu = evaluate_checkpoint(gpu_run, save=False, device="cpu")
    assert abs(on_gpu["psnr_db"] - on_cpu["psnr_db"]) < 0.05
    assert abs(on_gpu["codes_used"] - on_cpu["codes_used"]) <= 1
    learned = on_gpu["prior"]["learned_bits_per_latent"]
    assert learned < on_gpu["prior"]["uniform_bits_per_latent"]
    assert abs(learned - on_cpu["prior"]["learned_bits_per_latent"]) < 0.01


def test_a_run_begun_on_the_gpu_resumes_on_the_cpu(gpu_run, tmp_path):
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(gpu_run), str(copy)], check=True)
    assert main(["train", "--out", str(copy), "--resume", "--steps", "70", "--device", "cpu", "--no-eval"]) == 0
    assert ckpt.load_checkpoint(copy).step == 70


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_trains_on_the_gpu_with_the_codebook_in_float32(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU does not compute bf16")
    chosen = preset("digits-tiny")
    result = train_vqvae(chosen.vqvae, chosen.train, tmp_path / "run", runtime=Runtime(GPU, precision))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    model = ckpt.load_checkpoint(tmp_path / "run").model
    assert model.quantizer.embedding.dtype == torch.float32 and model.quantizer.embedding.device.type == "cpu"


def test_every_inference_command_runs_on_the_gpu(gpu_run, tmp_path):
    assert main(["analyse", str(gpu_run), "--no-umap", "--device", "cuda"]) == 0
    assert main(["reconstruct", str(gpu_run), "--n", "8", "--out", str(tmp_path / "r.png"), "--device", "cuda"]) == 0
    assert main(["sample", str(gpu_run), "--n", "16", "--out", str(tmp_path / "s.png"), "--device", "cuda"]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("folder", ["mnist", "emoji64-2level"])
def test_the_apps_models_on_the_gpu_answer_as_on_the_cpu(folder):
    path = ROOT / "checkpoints" / folder
    if not (path / ckpt.CONFIG).exists():
        pytest.skip(f"{folder} is not shipped here")
    gpu, cpu = Explorer(path, GPU), Explorer(path, "cpu")
    a, b = gpu.reconstruct_heldout(3), cpu.reconstruct_heldout(3)
    assert (a.indices == b.indices).mean() > 0.95
    assert abs(a.psnr_db - b.psnr_db) < 0.5
    drawn = gpu.compare(8, seed=1)
    assert set(drawn) == set(cpu.priors) and all(np.isfinite(s.bits_per_latent) for s in drawn.values())


def test_two_gpus_train_one_run_with_nccl(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("fewer than two GPUs")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vqvae"]
    command += ["train", *TINY, "--out", str(tmp_path / "run"), "--steps", "20", "--device", "cuda", "--no-eval"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ckpt.load_checkpoint(tmp_path / "run").step == 20
