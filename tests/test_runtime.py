"""Devices and precision (vqvae/runtime.py): bf16 autocast trains on the CPU with the codebook kept in
float32, and a device or precision this machine cannot give, or a resume that would change a run's
settings, is refused with one clear message before anything is written."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.__main__ import main
from vqvae.config import preset
from vqvae.data import load_source
from vqvae.errors import TrainingError
from vqvae.families import build_model
from vqvae.runtime import Runtime, pick_device, pick_precision, pick_runtime
from vqvae.train import train_vqvae

TINY = ["--preset", "digits-tiny", "--no-eval"]


def test_under_bf16_autocast_the_codebook_search_and_losses_stay_float32():
    model = build_model(preset("digits-tiny").vqvae).train()
    with Runtime(precision="bf16").autocast():
        out = model(torch.rand(4, 1, 8, 8))
    vq = out.levels[0]
    assert out.x_hat.dtype == torch.bfloat16  # the networks ran in bf16
    assert vq.z_q.dtype == vq.loss.dtype == torch.float32
    assert model.quantizer.embedding.dtype == model.quantizer.embed_sum.dtype == torch.float32


def test_bf16_autocast_on_the_cpu_trains_and_lowers_the_loss(tmp_path):
    chosen = preset("digits-tiny")
    result = train_vqvae(chosen.vqvae, chosen.train, tmp_path / "run", runtime=Runtime(precision="bf16"))
    losses = [row["loss"] for row in result.history]
    assert result.step == chosen.train.steps
    assert losses[-1] < 0.6 * losses[0]
    assert ckpt.load_checkpoint(tmp_path / "run").model.quantizer.embedding.dtype == torch.float32


def test_auto_is_the_cpu_in_float32_on_a_machine_without_a_gpu():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    runtime = pick_runtime()
    assert runtime.device == torch.device("cpu") and runtime.precision == "fp32"


def test_fp16_is_refused_off_cuda_with_what_to_use_instead():
    with pytest.raises(TrainingError, match="fp16 needs a CUDA GPU.*use bf16 or fp32"):
        pick_precision("fp16", torch.device("cpu"))


def test_a_gpu_asked_for_where_there_is_none_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(TrainingError, match="no CUDA GPU is visible to PyTorch; use --device cpu"):
        pick_device("cuda")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
        (["--device", "cuda"], "no CUDA GPU is visible"),
    ],
)
def test_the_command_refuses_what_this_machine_cannot_give_before_writing(tmp_path, capsys, flags, said):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", *TINY, "--out", str(tmp_path / "run"), "--steps", "5", *flags]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_resume_that_would_change_the_runs_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--steps", "5"]) == 0
    before = ckpt.read_config(out)
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--K", "64"]) == 2
    err = capsys.readouterr().err
    assert "num_embeddings = 64 differs from the 32 the run was started with" in err
    assert ckpt.read_config(out) == before and ckpt.load_checkpoint(out).step == 5
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--K", "32"]) == 0  # the same is fine


def test_a_prior_resume_that_would_change_its_settings_is_refused(tmp_path, capsys):
    out, data = tmp_path / "run", tmp_path / "digits.npz"
    np.savez(data, images=load_source("digits").images.numpy())  # unlabelled: no classifier after the prior
    assert main(["train", *TINY, "--data", f"npz:{data}", "--out", str(out), "--steps", "5"]) == 0
    prior = ["train-prior", str(out), "--unconditional", "--batch-size", "32"]
    assert main([*prior, "--steps", "3", "--hidden", "16"]) == 0
    assert main(["train-prior", str(out), "--resume", "--steps", "6", "--hidden", "32"]) == 2
    assert "hidden_channels = 32 differs from the 16" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "checkpoints/mnist"],
        ["analyse", "checkpoints/mnist", "--no-umap"],
        ["reconstruct", "checkpoints/mnist", "--out", "OUT"],
        ["sample", "checkpoints/mnist", "--out", "OUT"],
        ["bench", "--quick"],
    ],
)
def test_every_command_refuses_a_gpu_that_is_not_here_before_writing(tmp_path, capsys, command):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    root = Path(__file__).resolve().parents[1]
    command = [str(root / part) if part.startswith("checkpoints/") else part for part in command]
    command = [str(tmp_path / "out.png") if part == "OUT" else part for part in command]
    before = ckpt.measured_files(root / "checkpoints" / "mnist")
    assert main([*command, "--device", "cuda"]) == 2
    assert "--device cuda was asked for, but no CUDA GPU is visible to PyTorch" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
    assert ckpt.measured_files(root / "checkpoints" / "mnist") == before


def test_the_app_refuses_a_gpu_that_is_not_here_before_serving():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "app.py", "--device", "cuda", "--port", "1"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "error: --device cuda was asked for, but no CUDA GPU is visible" in done.stderr


def test_the_cpu_named_as_the_device_samples_what_auto_samples(tmp_path):
    mnist = str(Path(__file__).resolve().parents[1] / "checkpoints" / "mnist")
    for device in ("cpu", "auto"):
        assert main(["sample", mnist, "--n", "8", "--out", str(tmp_path / f"{device}.png"), "--device", device]) == 0
    assert (tmp_path / "cpu.png").read_bytes() == (tmp_path / "auto.png").read_bytes()
