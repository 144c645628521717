"""Pages build inside gr.Blocks() without launching, and stay thin: no tensor maths in pages/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gradio as gr

import app
from pages.common import Shared
from vqvae.app.catalog import Catalog
from vqvae.app.runs import RunManager

PAGES_DIR = Path(app.__file__).parent / "pages"


def test_every_page_builds_inside_blocks(tmp_path):
    for title, page in app.PAGES.items():
        shared = Shared(Catalog((app.ROOT / "checkpoints",), app.ROOT), RunManager(tmp_path / "runs"))
        with gr.Blocks() as demo:
            shared.demo = demo
            shared.picker = gr.Dropdown(["checkpoints/mnist"], value="checkpoints/mnist")
            shared.level = gr.Radio([], value=None, visible=False)
            page.build(shared)
        assert len(demo.fns) > 0, f"{title} wires no events"


def test_the_whole_app_builds_with_one_picker(tmp_path):
    demo = app.build_app(roots=(app.ROOT / "checkpoints",), runs_dir=tmp_path / "runs")
    pickers = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "checkpoint-picker"]
    assert len(pickers) == 1 and pickers[0].value == "checkpoints/mnist"


def test_pages_import_no_torch():
    for path in PAGES_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        assert "torch" not in imported, f"{path.name} imports torch"


def test_vqvae_never_imports_gradio():
    """The UI toolkit stays in pages/ and app.py (the bench talks to a served app through gradio_client)."""
    for path in (PAGES_DIR.parent / "vqvae").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name == "gradio" or name.startswith("gradio.")}, path.name


def test_the_app_is_built_without_loading_torch(tmp_path):
    """torch takes ~1.5 s to import: the app serves its page first and loads it on the first request."""
    script = (
        "import sys, app; app.build_app(runs_dir=__import__('pathlib').Path(sys.argv[1])); "
        "print(sorted(name for name in ('torch', 'umap', 'safetensors.torch') if name in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "runs")],
        cwd=app.ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_app_imports_gradio_without_its_stub_writer():
    """Gradio rewrites its type stubs on every import, half of its import time; the app's process skips that
    step. Should a Gradio upgrade move it, this fails rather than the start quietly slowing down."""
    script = (
        "import sys, app, gradio.blocks_events as events, gradio.component_meta as meta, pages.gradio_import as ours; "
        "skip = ours.skip_stub_writing; "
        "print(meta.create_or_modify_pyi is skip, events.create_or_modify_pyi is skip, app.gr is sys.modules['gradio'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=app.ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True", "True", "True"], done.stdout + done.stderr


def test_the_training_page_polls_only_while_a_run_is_going(tmp_path):
    """150 idle tabs polling every second filled the model's queue: the timer starts off; starting a
    run turns it on, and the status turns it off once the run has ended."""
    from pages import training

    demo = app.build_app(roots=(app.ROOT / "checkpoints",), runs_dir=tmp_path / "runs")
    timers = [block for block in demo.blocks.values() if isinstance(block, gr.Timer)]
    assert timers and all(not timer.active for timer in timers)
    shared = Shared(Catalog((app.ROOT / "checkpoints",), app.ROOT), RunManager(tmp_path / "runs"))
    *_, timer = training.run_status(shared, None)
    assert timer.active is False  # no run: nothing to poll


def test_a_code_grid_leaves_cells_without_a_code_empty():
    """A cell below 0 (not drawn yet) is grey and blank, off the colour scale of the real codes."""
    from pages.figures import EMPTY_CELL, code_grid

    figure = code_grid([[3, 7], [-1, -1]], "half drawn").to_plotly_json()
    heatmap, layout = figure["data"][0], figure["layout"]
    assert heatmap["z"] == [[3, 7], [None, None]] and heatmap["text"] == [["3", "7"], ["", ""]]
    assert layout["plot_bgcolor"] == EMPTY_CELL
    assert layout["xaxis"]["title"]["text"] == "column" and layout["yaxis"]["title"]["text"] == "row"


def test_picking_a_preset_sets_its_own_data_codebook_and_learning_rate():
    from pages import training

    data, k, d, lr = training.preset_fields("emoji")
    assert data == "emoji" and (k, d, lr) == (512, 64, 1e-3)
    data, k, d, lr = training.preset_fields("fashion")
    assert data == "fashion-mnist" and lr == 3e-3
    data, *_ = training.preset_fields("cifar10")  # its archive is not one of the listed sources: data stays
    assert isinstance(data, type(gr.skip()))
