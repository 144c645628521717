import json
import re
import subprocess
import sys


def run(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "vqvae", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_help_explains_each_command():
    out = run("--help").stdout
    assert "train" in out and "evaluate" in out
    train_help = run("train", "--help").stdout
    for flag in ("--preset", "--out", "--steps", "--minutes", "--quantizer", "--K", "--D", "--resume", "--seed"):
        assert flag in train_help


def test_train_resume_and_evaluate_json(tmp_path):
    out = tmp_path / "run"
    run("train", "--preset", "digits-tiny", "--out", str(out), "--steps", "10", "--no-eval")
    run("train", "--out", str(out), "--resume", "--steps", "20", "--no-umap")
    metrics = json.loads(run("evaluate", str(out), "--json").stdout)
    assert metrics["train_steps"] == 20
    assert metrics["split"] == "test" and metrics["images"] == 179
    assert 0 < metrics["mse"] < 1 and metrics["psnr_db"] > 0
    assert metrics["codes_used"] + metrics["dead_codes"] == metrics["num_embeddings"] == 32
    assert metrics["bits_per_image_uniform"] == 4 * 4 * 5
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_a_length_given_on_resume_replaces_the_length_the_run_had(tmp_path):
    """A run that ended on its minutes, resumed with --steps, trains to those steps; so does its prior."""

    def saved_at(result) -> int:
        return int(re.search(r"at step (\d+)", result.stdout).group(1))

    out = tmp_path / "run"
    first = saved_at(run("train", "--preset", "digits-tiny", "--out", str(out), "--minutes", "0.01", "--no-eval"))
    resumed = run("train", "--out", str(out), "--resume", "--steps", str(first + 10), "--no-eval")
    assert saved_at(resumed) == first + 10
    first = saved_at(run("train-prior", str(out), "--minutes", "0.01"))
    assert saved_at(run("train-prior", str(out), "--resume", "--steps", str(first + 10))) == first + 10


def test_bad_settings_give_a_clear_message(tmp_path):
    result = run("train", "--preset", "digits-tiny", "--out", str(tmp_path / "x"), "--K", "0", check=False)
    assert result.returncode == 2
    assert "num_embeddings (K) must be at least 2" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run("evaluate", str(tmp_path / "nothing"), check=False)
    assert missing.returncode == 2 and "no checkpoint folder" in missing.stderr
    bad_data = run(
        "train", "--preset", "digits-tiny", "--out", str(tmp_path / "y"), "--data", "folder:/nope", check=False
    )
    assert bad_data.returncode == 2 and "no such file or folder" in bad_data.stderr


def test_reconstruct_writes_inputs_above_reconstructions(tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    run("train", "--preset", "digits-tiny", "--out", str(out), "--steps", "5", "--no-eval")
    run("reconstruct", str(out), "--n", "4", "--scale", "1", "--out", str(tmp_path / "r.png"))
    with Image.open(tmp_path / "r.png") as picture:
        assert picture.size == (2 + 4 * 10, 2 + 2 * 10)  # 4 columns, 2 rows of 8x8 tiles, 2 px padding
