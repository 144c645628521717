"""vqvae-explorer in the browser: look inside a VQ-VAE's discrete latent space.

python app.py [--checkpoint checkpoints/mnist] [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Gradio's uploads and rendered images, in a folder of the app's own (Gradio serves every file in
# it). Visitors see its path in Gradio's file references, so it lies in the system's temp folder,
# where its path tells nothing of the server's layout.
TEMP = Path(tempfile.gettempdir()) / f"vqvae-explorer-{os.getuid() if hasattr(os, 'getuid') else 'app'}"
for name, value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_TEMP_DIR": str(TEMP),
    # Gradio's queue keeps a record of the last 10,000 calls for its monitoring page (off here) and
    # sums them up with pandas after every call: CPU on every call once full, and memory that
    # grows with use. One record, never summed.
    "GRADIO_ANALYTICS_MAX_EVENTS": "1",
    "GRADIO_ANALYTICS_CACHE_FREQUENCY": str(2**62),
    # Gradio asks matplotlib for its backend around every call; with none named, the first call
    # imports pyplot to find one. The app draws nothing with matplotlib.
    "MPLBACKEND": "agg",
}.items():
    os.environ.setdefault(name, value)

from pages.gradio_import import import_gradio  # noqa: E402

gr = import_gradio()  # before anything else imports gradio: see pages/gradio_import.py

from starlette.middleware import Middleware  # noqa: E402

from pages import atlas, codes, figures, levels, reconstruct, sampling, training, usage  # noqa: E402
from pages.common import Shared, callback, explorers, level_choice  # noqa: E402
from pages.guards import BodyLimit, KnownCalls, QueueDoor, SecurityHeaders, SketchBlobs, Uploads  # noqa: E402
from pages.reconstruct import UPLOAD_TYPES  # noqa: E402
from vqvae.app.catalog import Catalog, label  # noqa: E402
from vqvae.app.exposure import Exposure, exposure_for  # noqa: E402
from vqvae.app.runs import RunManager  # noqa: E402
from vqvae.config import DEVICES, every_level_name  # noqa: E402
from vqvae.errors import ExposureError  # noqa: E402

PAGES = {
    "Reconstruct": reconstruct,
    "Codebook usage": usage,
    "Embedding atlas": atlas,
    "Per-code reconstructions": codes,
    "Sampling": sampling,
    "Levels": levels,
    "Training": training,
}
DEFAULT_CHECKPOINT = "checkpoints/mnist"
DATA_ROOT = ROOT / "data"  # the folder path sources of runs from the app must lie in (--data-root)
STATIC = ROOT / "pages" / "static"
THREADS_PER_REQUEST = 1
CALLS_AT_ONCE = 2  # model calls run together: the machine's two cores
QUEUE_SIZE = 64  # calls waiting beyond those; one more is refused at once ("queue full")
MAX_FILE_MB = 16  # an upload; a 28x28 model needs far less, but a phone photo is a few MB
# The largest request the pages send is an upload: one file plus its form fields. Every other call
# is a few KB of JSON (pictures travel as uploaded files, by name), so 1 MiB is far above any of
# them and far below an inline image big enough to hurt; bigger bodies are refused unread.
BODY_CAP = 2**20
BODY_CAPS = {
    "/gradio_api/upload": (MAX_FILE_MB + 1) * 2**20,
    "/gradio_api/component_server": 2**18,  # a drawing's layer: a 280x280 PNG of a few KB
    "/gradio_api/component_server/": 2**18,
}
# What one visitor (a client address; behind a proxy on this machine, the address it forwards) may
# upload in an hour: a class behind one school address uploads a few photos each. The Gradio temp
# folder (uploads and rendered images, cleaned hourly) takes no upload past its cap.
UPLOADS_PER_VISITOR = (256 * 2**20, 300)  # bytes, files
TEMP_CAP = 2**30
# Gradio keeps, per session (a browser tab, an API client), a copy of every component's settings
# and last values, about 0.5 MB here, until the session is among the least recently used beyond
# this many: memory stops growing with visitors there. A class fits; a visitor forgotten and back
# again re-runs a reconstruction before an edit (and is told so).
SESSIONS = 100
# Larger type and pictures for a projector, kept in the address (?presenter) so a reload keeps it.
PRESENTER_TOGGLE = """() => {
  const on = document.body.classList.toggle("presenter");
  const url = new URL(window.location.href);
  if (on) url.searchParams.set("presenter", "1"); else url.searchParams.delete("presenter");
  window.history.replaceState(null, "", url);
}"""
# the level choice is shown only on the pages that follow it (FOLLOWS_LEVEL); elsewhere it would say nothing
LEVEL_SHOWN = '() => document.body.classList.remove("level-elsewhere")'
LEVEL_ELSEWHERE = '() => document.body.classList.add("level-elsewhere")'
JOINS = ("/gradio_api/queue/join", "/gradio_api/call/")  # the POSTs that put a call in the queue


def build_app(
    checkpoint: str = DEFAULT_CHECKPOINT,
    roots: tuple[Path, ...] | None = None,
    runs_dir: Path | None = None,
    exposure: Exposure | None = None,
    data_root: Path = DATA_ROOT,
    device: str = "auto",
):
    """The whole app in one gr.Blocks: a checkpoint picker shared by a tab per page; its models compute on
    `device` (auto: a GPU when there is one)."""
    runs_dir = runs_dir or ROOT / "runs"
    exposure = exposure or Exposure()
    catalog = Catalog(roots or (ROOT / "checkpoints", runs_dir), ROOT)
    runs = RunManager(runs_dir, data_root, uploads=Path(os.environ["GRADIO_TEMP_DIR"]))
    shared = Shared(
        catalog, runs, THREADS_PER_REQUEST, device, training=exposure.training, owners=exposure.login is not None
    )
    choices = catalog.choices()
    initial = checkpoint if checkpoint in choices else (choices[0] if choices else None)
    # uploads and rendered images older than an hour are deleted, hourly: the temp folder does not grow
    with gr.Blocks(title="vqvae-explorer", delete_cache=(3600, 3600)) as demo:
        shared.demo = demo
        demo.runs = runs  # ended with the app: see main()
        with gr.Row(elem_id="header"):
            gr.Markdown("## vqvae-explorer\nInside the discrete latent space of a VQ-VAE (van den Oord et al. 2017).")
            # every value is checked against the catalog on use, so a run trained later is accepted too
            shared.picker = gr.Dropdown(
                choices,
                value=initial,
                label="checkpoint",
                elem_id="checkpoint-picker",
                scale=0,
                min_width=300,  # the longest shipped name, checkpoints/emoji64-2level, with the arrow beside it
                allow_custom_value=True,
            )
            refresh = gr.Button("↻", scale=0, min_width=40, elem_id="refresh-checkpoints")
            # a VQ-VAE-2's levels (top, bottom): the pages where it matters show the chosen one
            # offered every level name a hierarchy may have, so a call through the API may name any of them;
            # each checkpoint then narrows the choice to its own levels
            shared.level = gr.Radio(
                every_level_name(), value=None, label="level", visible=False, scale=0, min_width=240, elem_id="level"
            )
            presenter = gr.Button("presenter view", scale=0, min_width=150, size="sm", elem_id="presenter-toggle")
        for title, page in PAGES.items():
            with gr.Tab(title, elem_id=f"tab-{page.__name__.split('.')[-1]}") as tab:
                page.build(shared)
            tab.select(None, js=LEVEL_SHOWN if getattr(page, "FOLLOWS_LEVEL", False) else LEVEL_ELSEWHERE)

        def offered(current: str | None) -> gr.Dropdown:
            choices = catalog.choices()
            value = current if current in choices else (checkpoint if checkpoint in choices else None)
            return gr.Dropdown(choices=choices, value=value or (choices[0] if choices else None))

        def listed() -> gr.Dropdown:
            return gr.Dropdown(choices=catalog.choices())

        shared.on_checkpoint(callback(level_choice, shared), shared.picker, shared.level, show_progress="hidden")
        refresh.click(offered, shared.picker, shared.picker, api_visibility="private")
        # a run that finished since the page opened is offered as soon as the picker is opened; only the
        # list is renewed, so an answer that comes after the visitor's pick never puts the old value back
        shared.picker.focus(listed, None, shared.picker, api_visibility="private", show_progress="hidden")
        presenter.click(None, js=PRESENTER_TOGGLE)
    return demo


def launch(demo: gr.Blocks, host: str, port: int, block: bool = True, login: tuple[str, str] | None = None) -> None:
    """Serve the app: a bounded queue, two requests at a time (the machine's two cores), our styles;
    behind Gradio's login when one is given."""
    # api_open=False: /gradio_api/run/NAME would otherwise run a call at once, past the queue and its limits
    demo.queue(default_concurrency_limit=CALLS_AT_ONCE, max_size=QUEUE_SIZE, api_open=False).launch(
        server_name=host,
        server_port=port,
        css_paths=[STATIC / "app.css"],
        js=(STATIC / "app.js").read_text(),
        theme=gr.themes.Soft(),
        show_error=False,
        max_file_size=f"{MAX_FILE_MB}mb",
        state_session_capacity=SESSIONS,
        enable_monitoring=False,  # else /monitoring/summary shows anyone the events' timings
        ssl_verify=False,  # only for launch's request to itself over plain http; checking it loads the CA bundle
        app_kwargs={"middleware": guards(demo)},
        auth=login,
        prevent_thread_lock=True,
    )
    unnamed(demo.server)
    if block:
        demo.block_thread()


def unnamed(server) -> None:
    """No `server: uvicorn` header: a visitor need not know what serves the app. (uvicorn adds it
    to every answer from its config, which Gradio builds; it re-reads it each second.)"""
    config = server.config
    config.server_header = False
    config.encoded_headers = [(name, value) for name, value in config.encoded_headers if name != b"server"]
    state = server.server_state
    state.default_headers = [(name, value) for name, value in state.default_headers if name != b"server"]


def guards(demo: gr.Blocks) -> list[Middleware]:
    """What answers a request before Gradio reads it (pages/guards.py): headers on every answer, a body
    over its cap, a call the app does not have, a sketch blob it never sends, an upload past its
    limits, a full queue."""

    def waiting() -> int:
        return len(demo._queue)  # what Gradio compares with max_size as a call joins

    return [  # the first is outermost: a body is capped before any guard after it reads it
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, default=BODY_CAP, caps=BODY_CAPS),
        Middleware(KnownCalls, names=frozenset(fn.api_name for fn in demo.fns.values() if fn.api_name)),
        Middleware(SketchBlobs),
        Middleware(
            Uploads,
            folder=Path(os.environ["GRADIO_TEMP_DIR"]),
            folder_cap=TEMP_CAP,
            per_visitor=UPLOADS_PER_VISITOR[0],
            files_per_visitor=UPLOADS_PER_VISITOR[1],
            suffixes=UPLOAD_TYPES,
        ),
        Middleware(QueueDoor, waiting=waiting, size=QUEUE_SIZE, joins=JOINS),
    ]


def warm_up(folder: Path, device: str = "auto") -> None:
    """Load torch, the checkpoint and its priors in the background once the page is being served,
    so the first visitor's page fills in sooner. A checkpoint that fails here fails again, with
    its message, when a page opens it."""

    def load() -> None:
        try:
            explorer = explorers(THREADS_PER_REQUEST, device).open_explorer(folder)
            _ = explorer.heldout_bits  # cached on the explorer
            # what the first answer would load else: plotly's figure classes, and matplotlib,
            # which Gradio imports around every call
            figures.code_grid(explorer.reconstruct_heldout(0).indices.tolist())
            import matplotlib  # noqa: F401
        except Exception:
            logging.getLogger(__name__).warning("could not load %s ahead of its first request", folder, exc_info=True)

    threading.Thread(target=load, name="warm-up", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT, help=f"folder shown first [default: {DEFAULT_CHECKPOINT}]"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on [default: 127.0.0.1]")
    parser.add_argument("--port", type=int, default=7860, help="port [default: 7860]")
    parser.add_argument(
        "--public", action="store_true", help="a public demo: exploring only, no training (also: VQVAE_PUBLIC=1)"
    )
    parser.add_argument(
        "--auth-file", type=Path, help='a file whose first line is user:password (or VQVAE_AUTH="user:password")'
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=ROOT / "runs",
        help="where runs started from the app are written [default: runs]",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DATA_ROOT,
        help="the folder runs may read folder:, idx:, npz: and cifar10: sources from "
        f"[default: {DATA_ROOT.relative_to(ROOT)}]",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the models compute: a CUDA GPU if there is one, else Apple's MPS, else the CPU; runs started "
        "from the Training page train on the CPU [default: auto]",
    )
    args = parser.parse_args()
    if args.device != "auto":  # a device asked for by name is checked before the app serves
        from vqvae.errors import TrainingError
        from vqvae.runtime import pick_device

        try:
            pick_device(args.device)
        except TrainingError as error:
            raise SystemExit(f"error: {error}") from None
    try:
        exposure = exposure_for(args.host, args.public, args.auth_file)
    except ExposureError as error:
        raise SystemExit(f"error: {error}") from None
    checkpoint = Path(args.checkpoint).resolve()
    runs_dir = args.runs_dir.resolve()
    roots = tuple(dict.fromkeys((ROOT / "checkpoints", runs_dir, checkpoint.parent)))
    shown = label(checkpoint, ROOT)  # as the picker names it
    demo = build_app(shown, roots, runs_dir, exposure=exposure, data_root=args.data_root, device=args.device)
    launch(demo, args.host, args.port, block=False, login=exposure.login)
    warm_up(checkpoint, args.device)
    signal.signal(signal.SIGTERM, stop_serving)
    try:
        demo.block_thread()  # until Ctrl-C or SIGTERM
    finally:
        demo.runs.close()  # a run still going ends with the app, and its semaphores are released


def stop_serving(signum: int, frame: object) -> None:
    """SIGTERM ends the app as Ctrl-C does: the server closes and a run that is going is stopped
    (the system's default would end the process before either)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
