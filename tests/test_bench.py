import json
import math
import subprocess
import sys

import torch
from torch import nn

from vqvae.bench.baseline import PlainTrainer, PlainVQVAE
from vqvae.bench.report import device_table, table
from vqvae.bench.training import ours_step_flops
from vqvae.config import preset
from vqvae.data import Dataset, Split, load_split
from vqvae.model import VQVAE


def test_quick_bench_prints_valid_json_with_every_measure(tmp_path):
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "vqvae", "bench", "--quick", "--no-app", "--json", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert json.loads(out.read_text()) == results
    assert "app" not in results
    assert results["machine"]["threads"] >= 1
    training = results["training"]
    throughput = training["throughput"]
    for key in ("ours_images_per_s", "plain_images_per_s", "ratio"):
        assert throughput[key] > 0
    quality = training["time_to_quality"]
    for side in ("ours", "plain"):
        run = quality[side]
        assert run["reached"] == (run["train_s"] is not None)
        assert run["best_psnr_db"] > 0
    peak = training["peak_fraction"]
    assert peak["step_gflop"] > 0 and peak["matmul_gflops"] > 0 and peak["fraction"] > 0
    memory = training["memory"]
    assert memory["ours_peak_rss_mb"] > 0 and memory["plain_peak_rss_mb"] > 0
    prior = results["prior"]
    assert prior["log_prob_grids_per_s"] > 0 and prior["sample_1_ms"] > 0 and prior["sample_64_s"] > 0
    hierarchy = results["hierarchy"]  # the shipped VQ-VAE-2's 16 samples
    assert hierarchy["images"] == 16 and hierarchy["threads"] == 2 and hierarchy["sample_s"] > 0
    refusals = results["refusals"]
    assert len(refusals["checkpoints"]) >= 8 and len(refusals["images"]) == 4
    assert all(r["median_ms"] > 0 and r["message"] for kind in refusals.values() for r in kind)
    markdown = table(results)
    assert "| training throughput (images/s) |" in markdown and "| prior: sample 64 grids |" in markdown
    assert "| VQ-VAE-2 (emoji64-2level): 16 samples" in markdown
    assert "| a broken checkpoint folder refused, slowest of" in markdown


def _mnist_like(n: int = 256) -> Split:
    images = torch.rand(n, 1, 28, 28) ** 3  # mostly dark, like digits
    data = Dataset(images, torch.zeros(n, dtype=torch.int64), [])
    return Split(train=data, test=data)


def test_plain_baseline_has_our_architecture_and_its_step_lowers_the_loss():
    chosen = preset("mnist")
    plain, ours = PlainVQVAE(chosen.vqvae), VQVAE(chosen.vqvae)
    for a, b in ((plain.encoder, ours.encoder), (plain.decoder, ours.decoder)):
        assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert plain.codebook.shape == (512, 64)

    images = load_split("mnist5k", 28, 1).train.images[:512]
    torch.manual_seed(0)
    trainer = PlainTrainer(PlainVQVAE(chosen.vqvae), images, batch_size=32, learning_rate=3e-3)

    def reconstruction_error() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(trainer.model(images)[0], images))

    before = reconstruction_error()
    losses = [trainer.step() for _ in range(60)]
    # the total loss may spike on the way (the uniform codebook's loss term), the reconstruction falls
    assert reconstruction_error() < 0.7 * before
    assert all(map(math.isfinite, losses))


def _forward_flops(model: VQVAE, x: torch.Tensor) -> int:
    """Multiply-adds x 2 of every conv and of the nearest-code distances, from the layers' shapes."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        grid = inputs[0] if isinstance(module, nn.ConvTranspose2d) else output
        total += 2 * module.in_channels * module.out_channels * k * grid[0, 0].numel() * grid.shape[0]

    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(hook)
    with torch.no_grad():
        z_e = model.encoder(x)
        model.decoder(z_e)
    positions = z_e.shape[0] * z_e.shape[2] * z_e.shape[3]
    return total + 2 * positions * model.num_embeddings * model.config.quantizer.embedding_dim


def test_a_training_steps_flop_count_is_about_three_forward_passes():
    chosen = preset("mnist")
    counted = ours_step_flops(chosen, _mnist_like(), batch_size=16)
    forward = _forward_flops(VQVAE(chosen.vqvae), torch.rand(16, 1, 28, 28))
    assert 2.5 * forward < counted < 3.5 * forward  # backward: a gradient for the weights and for the input
    assert ours_step_flops(chosen, _mnist_like(), batch_size=32) == 2 * counted


def test_the_device_bench_measures_each_precision_and_sets_a_gpu_beside_the_cpu(tmp_path):
    out = tmp_path / "device.json"
    command = [sys.executable, "-m", "vqvae", "bench", "--device", "cpu", "--quick", "--no-app", "--json"]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert json.loads(out.read_text()) == results and results["device"].startswith("cpu")
    mnist = results["training"]["mnist"]
    assert mnist["batch_64_fp32"]["images_per_s"] > 0 and mnist["batch_64_bf16"]["images_per_s"] > 0
    quality = results["precision"]
    assert quality["steps"] == 6 and math.isfinite(quality["difference_db"])
    assert 5 < quality["fp32_psnr_db"] < 40 and 5 < quality["bf16_psnr_db"] < 40
    assert results["sampling"]["mnist_sample_64_s"] > 0
    faster = json.loads(json.dumps(results))  # as if a GPU had trained 25 times as many images per second
    faster["training"]["mnist"]["batch_64_fp32"]["images_per_s"] *= 25
    shown = device_table(faster, reference=results)
    assert "| training, mnist, batch 64, fp32 (images/s) |" in shown and "| 25.0x | >= 20x the 2-core CPU |" in shown
