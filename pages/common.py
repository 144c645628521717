"""What every page shares: the checkpoint picker, the run manager, and turning errors into messages."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import inspect
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from vqvae.app.catalog import Catalog
from vqvae.app.runs import RunManager
from vqvae.errors import VQVAEError
from vqvae.files import ANALYSIS_IMAGES
from vqvae.images import LabelledTiles, enlarge, mosaic, png_bytes, tile_at

if TYPE_CHECKING:
    from vqvae.app.explorer import Explorer

log = logging.getLogger(__name__)

MODEL = "model"  # the concurrency group of every event that runs the model: queue()'s limit is for all of them
# A clickable picture is sent at least as large as the page ever shows it: Gradio maps a click on an
# image shown larger than its own pixels as if it were shown at its own size, so it would miss its
# cell. (The presenter view shows the reconstruction 320 px tall.)
# The held-out sliders are built over every image a checkpoint's analysis keeps: opening a checkpoint narrows a
# page's slider to its own, but a raw API call never opens the page, so its index is checked against this range
# (and then by the explorer, against the checkpoint's own)
HELDOUT_LAST = ANALYSIS_IMAGES - 1
DISPLAY_PIXELS = 336  # images are enlarged to about this many pixels a side, without blur


@dataclass
class Shared:
    catalog: Catalog
    runs: RunManager
    threads: int = 1  # torch's intra-op threads for each request
    device: str = "auto"  # where the models compute: a GPU when there is one (runtime.pick_device)
    training: bool = True  # visitors may train (not in a public demo without a login)
    owners: bool = False  # a run is stopped only from the browser that started it (behind a login)
    picker: gr.Dropdown | None = None  # made by app.py, read by every page
    level: gr.Radio | None = None  # a VQ-VAE-2's level the pages look at (app.py); hidden for one grid
    demo: gr.Blocks | None = None

    def on_checkpoint(
        self, fn: Callable[..., Any], inputs: Any, outputs: Any, levels: bool = False, **options: Any
    ) -> Any:
        """Run fn when the page opens and whenever another checkpoint is picked (and, with levels=True,
        another level of a hierarchy).

        always_last: a checkpoint picked while the page's first answer is still being made runs fn
        again once that answer is in (Gradio's default for gr.on, "once", would drop the pick and
        leave the pages on the first checkpoint while the picker names the new one)."""
        options.setdefault("api_visibility", "private")
        options.setdefault("trigger_mode", "always_last")
        options.setdefault("concurrency_id", MODEL)
        triggers = [self.demo.load, self.picker.change] + ([self.level.change] if levels else [])
        return gr.on(triggers, fn, inputs, outputs, **options)

    def explorer(self, choice: str, level: str | None = None) -> Explorer:
        """The chosen checkpoint, at `level` when it is a hierarchy with that level (else at its top level:
        a level left from another checkpoint, before the level choice has followed the picker)."""
        explorer = explorers(self.threads, self.device).open_explorer(self.catalog.resolve(choice))
        return explorer.at(level) if level in explorer.levels else explorer


def level_choice(shared: Shared, choice: str) -> gr.Radio:
    """The level choice fitted to a checkpoint: a hierarchy's levels, its top one chosen; hidden for one grid."""
    found = shared.explorer(choice).levels
    return gr.Radio(choices=found, value=found[0] if found else None, visible=bool(found))


@functools.cache
def explorers(threads: int, device: str = "auto") -> ModuleType:
    """vqvae.app.explorer, imported on first use, so the app serves its page before torch has loaded."""
    from vqvae.app import explorer

    explorer.use_threads(threads)
    explorer.use_device(device)
    return explorer


def callback(fn: Callable[..., Any], shared: Shared) -> Callable[..., Any]:
    """fn(shared, *inputs) as an event handler that shows the project's own error messages in the page
    and hides anything unexpected behind a short note (the details go to the server log)."""
    bound = functools.partial(fn, shared)

    @functools.wraps(bound)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return bound(*args, **kwargs)
        except gr.Error:
            raise
        except VQVAEError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"{fn.__name__} failed unexpectedly ({type(error).__name__}); see the server log") from None

    # Gradio reads the handler's signature to pass event data (gr.SelectData): show it fn's own, less `shared`
    signature = inspect.signature(fn, eval_str=True)
    parameters = list(signature.parameters.values())[1:]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
    wrapper.__name__ = fn.__name__
    del wrapper.__wrapped__
    return wrapper


def inline_image(image: np.ndarray, alt: str, caption: str = "") -> str:
    """An <img> carrying its own PNG (a data: URL): the answer needs no second request for the file.
    Used for pictures nobody clicks; clickable ones stay gr.Image, whose select event gives the pixel.
    The PNG holds the image's own pixels (a 28x28 digit is a few hundred bytes): the page's CSS
    enlarges it, without blur."""
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    img = f'<img class="inline-image" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
    return (
        f'<figure class="inline-figure"><figcaption>{html.escape(caption)}</figcaption>{img}</figure>'
        if caption
        else img
    )


def picture_file(image: np.ndarray) -> str:
    """A PNG file of `image` (H, W[, C]) uint8 for a gr.Image output, complete before it has a name.

    Handed an array, Gradio writes its cached PNG in place under a name made from the
    content, so two requests making the same picture at once (a class clicking the same digit)
    can be served a half-written file. Handed a finished file, it copies it atomically.
    """
    data = png_bytes(image)
    folder = _pictures_folder()
    path = folder / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if not path.exists():
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(staging, path)
        _forget_old_pictures(folder)
    return str(path)


PICTURE_LIFETIME_S = 3600  # Gradio copies a picture as the answer leaves; ours are only kept for reuse
_NEW_PICTURES = itertools.count(1)


@functools.cache
def _pictures_folder() -> Path:
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "vqvae-pictures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forget_old_pictures(folder: Path) -> None:
    """Every 256 new pictures, remove those older than PICTURE_LIFETIME_S."""
    if next(_NEW_PICTURES) % 256:
        return
    oldest = time.time() - PICTURE_LIFETIME_S
    for path in folder.glob("*.png"):
        try:
            if path.stat().st_mtime < oldest:
                path.unlink()
        except OSError:  # another request removed it first
            pass


def display_scale(side: int, pixels: int = DISPLAY_PIXELS) -> int:
    """The whole factor that enlarges an image `side` pixels wide to about `pixels`."""
    return max(1, pixels // side)


def scale_at_least(side: int, pixels: int) -> int:
    """The smallest whole factor that enlarges an image `side` pixels wide to `pixels` or more."""
    return max(1, -(-pixels // side))


def show(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> enlarged by a whole factor to about DISPLAY_PIXELS a side."""
    return enlarge(image, display_scale(max(image.shape[:2])))


def tiled(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (H', W', C) mosaic, `columns` to a row, with 1-pixel gaps."""
    return mosaic(images, columns, padding=1, background=90)


def show_many(images: np.ndarray, columns: int, pixels: int = 96) -> np.ndarray:
    """(N, H, W, C) uint8 -> one enlarged mosaic, each image about `pixels` a side (1-pixel gaps)."""
    return enlarge(tiled(images, columns), max(1, pixels // max(images.shape[1:3])))


def clickable_codes(tiles: LabelledTiles, codes: list[int]) -> dict:
    """What a click on a picture of labelled code tiles needs to find its code, kept in a gr.State."""
    return {"codes": list(codes), "columns": tiles.columns, "width": tiles.width, "height": tiles.height}


def code_clicked(shared: Shared, layout: dict | None, evt: gr.SelectData) -> int:
    """A click on a picture of labelled code tiles (x, y in its pixels) -> the code of the tile under it."""
    if not layout:
        return gr.skip()
    slot = tile_at(*evt.index, layout["columns"], layout["width"], layout["height"], len(layout["codes"]))
    return gr.skip() if slot is None else layout["codes"][slot]


def explain(text: str) -> gr.Markdown:
    """A short note for students under a page's title."""
    return gr.Markdown(text, elem_classes=["explain"], latex_delimiters=[{"left": "$", "right": "$", "display": False}])
