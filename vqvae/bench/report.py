"""The benchmark's results as a short Markdown table (docs/speed.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {  # issue 5's targets, shown beside the measures
    "throughput": ">= 2.0x plain",
    "time_to_quality": "<= 1/5 of plain",
    "peak_fraction": ">= 40% of matmul peak",
    "sample_64": "<= 0.25 s",
    "sample_1": "<= 30 ms",
    "cold_start": "<= 4 s",
    "serial": "p95 <= 150 ms",
    "concurrent": "p95 <= 1 s",
    "refusal": "< 1 s each",  # issue 6's: bad checkpoints and image bombs
    "hierarchy": "<= 1.5 s",  # VQ-VAE-2's: 16 images from every level's prior, decoded, on 2 threads
}


def _seconds(run: dict[str, Any]) -> str:
    if run["reached"]:
        return f"{run['train_s']:.1f} s ({run['steps']} steps)"
    return f"not reached in {run['cap_s']:.0f} s (best {run['best_psnr_db']:.1f} dB)"


def _memory(m: dict[str, Any], side: str) -> str:
    peak, start = m[f"{side}_peak_rss_mb"], m[f"{side}_start_rss_mb"]
    return f"{peak:.0f} MiB" + ("" if start is None else f" ({start:.0f} before training)")


def _training_rows(training: dict[str, Any]) -> list[str]:
    t, q, p, m = (training[k] for k in ("throughput", "time_to_quality", "peak_fraction", "memory"))
    speedup = f"{q['speedup']:.1f}x faster" if q["speedup"] else "plain: not reached"
    return [
        f"| training throughput (images/s) | {t['ours_images_per_s']:.0f} | {t['plain_images_per_s']:.0f} "
        f"| {t['ratio']:.2f}x | {TARGETS['throughput']} |",
        f"| time to {q['target_psnr_db']:g} dB held-out PSNR (batch {q.get('ours_batch_size', '')} / "
        f"{q.get('plain_batch_size', '')}) | {_seconds(q['ours'])} | {_seconds(q['plain'])} "
        f"| {speedup} | {TARGETS['time_to_quality']} |",
        f"| training step, GFLOP/s ({p['step_gflop']:.2f} GFLOP a step) | {p['ours_gflops']:.0f} "
        f"| {p['plain_gflops']:.0f} | {100 * p['fraction']:.0f}% of {p['matmul_gflops']:.0f} (matmul peak) "
        f"| {TARGETS['peak_fraction']} |",
        f"| training peak memory (RSS) | {_memory(m, 'ours')} | {_memory(m, 'plain')} | | |",
    ] + (
        [f"| time to {q['target_psnr_db']:g} dB, ours at batch {q['plain_batch_size']} too | "
         f"{_seconds(q['ours_at_plain_batch'])} | | | |"]
        if "ours_at_plain_batch" in q and q["ours_batch_size"] != q["plain_batch_size"] else []
    )  # fmt: skip


def _prior_rows(prior: dict[str, Any]) -> list[str]:
    return [
        f"| prior log-prob (grids/s) | {prior['log_prob_grids_per_s']:.0f} | | | |",
        f"| prior: sample 1 grid | {prior['sample_1_ms']:.1f} ms | | | {TARGETS['sample_1']} |",
        f"| prior: sample 64 grids | {prior['sample_64_s']:.3f} s | | | {TARGETS['sample_64']} |",
    ]


def _hierarchy_rows(h: dict[str, Any]) -> list[str]:
    return [
        f"| VQ-VAE-2 ({Path(h['source']).name}): {h['images']} samples, every level drawn and decoded, "
        f"{h['threads']} threads | {h['sample_s']:.2f} s | | | {TARGETS['hierarchy']} |"
    ]


def _refusal_rows(refusals: dict[str, list[dict[str, Any]]]) -> list[str]:
    rows = []
    for kind, what in (("checkpoints", "a broken checkpoint folder"), ("images", "an image bomb")):
        slowest = max(refusals[kind], key=lambda r: r["median_ms"])
        rows.append(
            f"| {what} refused, slowest of {len(refusals[kind])} kinds ({slowest['name']}), median "
            f"| {slowest['median_ms']:.2g} ms | | | {TARGETS['refusal']} |"
        )
    return rows


def _app_rows(app: dict[str, Any]) -> list[str]:
    if "error" in app:
        return [f"| app | not measured: {app['error']} | | | |"]
    rows = [f"| app: cold start to first served page | {app['cold_start_s']:.1f} s | | | {TARGETS['cold_start']} |"]
    if "first_answer_s" in app:
        rows.append(
            f"| app: start to first answer (torch and the checkpoint loaded) | {app['first_answer_s']:.1f} s | | | |"
        )
    for name, value in app.items():
        if isinstance(value, dict) and "p50_ms" in value:
            rows.append(
                f"| app: {name}, one call at a time, p50 / p95 | {value['p50_ms']:.0f} / {value['p95_ms']:.0f} ms"
                f" | | | {TARGETS['serial']} |"
            )
    crowd = app.get("concurrent")
    if crowd:
        rows.append(
            f"| app: {crowd['clients']} clients at once, every call, p50 / p95 | {crowd['all']['p50_ms']:.0f} /"
            f" {crowd['all']['p95_ms']:.0f} ms ({crowd['calls_per_s']:g} calls/s, {crowd['failures']} failed)"
            f" | | | {TARGETS['concurrent']} |"
        )
        worst = max((n for n in crowd if isinstance(crowd[n], dict) and "p95_ms" in crowd[n] and n != "all"),
                    key=lambda n: crowd[n]["p95_ms"], default=None)  # fmt: skip
        if worst:
            slowest = f"{crowd[worst]['p95_ms']:.0f} ms"
            rows.append(f"| app: {crowd['clients']} clients at once, slowest ({worst}), p95 | {slowest} | | | |")
    if "peak_memory_mb" in app:
        rows.append(f"| app: server peak memory (RSS) | {app['peak_memory_mb']:.0f} MiB | | | |")
    return rows


def table(results: dict[str, Any]) -> str:
    """One row per measure: ours, the plain baseline, their ratio, and the target."""
    info = results["machine"]
    lines = [
        f"Measured with `python -m vqvae bench` on {info['cpu_count']} CPU cores ({info['processor']}), "
        f"{info['threads']} torch threads, torch {info['torch']}; batch {results['settings']['batch_size']}, "
        f"the `{results['settings']['preset']}` preset.",
        "",
        "| measure | ours | plain baseline | ours vs plain | target |",
        "|---|---|---|---|---|",
        *_training_rows(results["training"]),
        *_prior_rows(results["prior"]),
        *(_hierarchy_rows(results["hierarchy"]) if "hierarchy" in results else []),
        *(_refusal_rows(results["refusals"]) if "refusals" in results else []),
    ]
    if "app" in results:
        lines += _app_rows(results["app"])
    return "\n".join(lines)


GPU_TARGETS = {"training": ">= 20x the 2-core CPU", "precision": "bf16 within 0.2 dB of fp32"}


def _times(value: float, reference: float | None) -> str:
    return "" if not reference else f"{value / reference:.1f}x"


def _device_training_rows(training: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    rows = []
    for name, found in training.items():
        if "error" in found:
            rows.append(f"| training, {name} | not measured: {found['error']} | | |")
            continue
        cpu = reference.get(name, {})
        for key, row in found.items():
            if not isinstance(row, dict):
                continue
            batch, precision = key.removeprefix("batch_").split("_")
            same = cpu.get(f"batch_{found['batch_size']}_fp32", {}).get("images_per_s")  # the CPU's own figure
            rows.append(
                f"| training, {name}, batch {batch}, {precision} (images/s) | {row['images_per_s']:.0f} "
                f"| {_times(row['images_per_s'], same)} | {GPU_TARGETS['training'] if same else ''} |"
            )
    return rows


def device_table(results: dict[str, Any], reference: dict[str, Any] | None = None) -> str:
    """`bench --device`'s results, one row per measure; beside each training figure, its ratio to the
    `reference` run's (the CPU's) figure of the same preset at the preset's batch in fp32."""
    reference = reference or {}
    q, sampling = results["precision"], results["sampling"]
    lines = [
        f"Measured with `python -m vqvae bench --device` on {results['device']}.",
        "",
        "| measure | this device | vs the CPU reference | target |",
        "|---|---|---|---|",
        *_device_training_rows(results["training"], reference.get("training", {})),
        f"| held-out PSNR after {q['steps']} steps of the {q['preset']} preset, fp32 / bf16 | "
        f"{q['fp32_psnr_db']:.2f} / {q['bf16_psnr_db']:.2f} dB ({q['difference_db']:+.2f} dB) | "
        f"| {GPU_TARGETS['precision']} |",
    ]
    for name, seconds in sampling.items():
        cpu = reference.get("sampling", {}).get(name)
        faster = f"{cpu / seconds:.1f}x faster" if cpu else ""
        lines.append(f"| {name.replace('_', ' ')} | {seconds:.3f} s | {faster} | |")
    if "app" in results:
        for row in _app_rows(results["app"]):  # measure, value, (baseline, ratio), target
            cells = row.split("|")
            lines.append(f"|{cells[1]}|{cells[2]}| |{cells[5]}|")
    return "\n".join(lines)
