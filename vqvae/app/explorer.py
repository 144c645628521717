"""A checkpoint opened for exploring: the questions the app asks, answered as numpy arrays.

Everything heavy is loaded once per checkpoint folder and cached here (not in the UI):
the VQ-VAE, its priors (uniform, unigram, learned) and the precomputed analysis. Results
are uint8 images (H, W, C) and integer grids (h, w), so a UI needs no tensor maths.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..analysis import Analysis, load_level_analysis
from ..codes_prior import CodesPrior
from ..comparison import level_priors_to_compare
from ..errors import CheckpointError, InputError
from ..families import Codes, code_shapes, decode_codes, encode_codes
from ..files import ANALYSIS
from ..images import LabelledTiles, labelled_tiles, to_uint8
from ..metrics import perplexity, psnr_db
from ..runtime import pick_device
from .forms import whole_number
from .inputs import Fitting, fit_image, fitting_for
from .levels import LevelsStudy, study_levels

MAX_SAMPLES = 64
RESAMPLES, MAX_RESAMPLES = 4, 8  # the levels below the top drawn again under one image's top codes
_BESIDE = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer-beside")  # work beside a request


@dataclass
class Decoded:
    image: np.ndarray | None  # (H, W, C) uint8, the model's input when there is one
    indices: np.ndarray  # (h, w) int64, the grid of the explorer's level
    reconstruction: np.ndarray  # (H, W, C) uint8
    psnr_db: float | None  # of the reconstruction against the input
    levels: dict[str, np.ndarray] = field(default_factory=dict)  # a hierarchy's every grid, top first


@dataclass
class Samples:
    prior: str
    images: np.ndarray  # (n, H, W, C) uint8
    indices: np.ndarray  # (n, h, w) int64, the grids of the explorer's level
    bits_per_latent: float  # mean -log2 p(z) per latent of these grids (every level's) under the learned prior


@dataclass
class FrameStage:
    """One level of a sample drawn step by step: a hierarchy draws its levels one after another, top first."""

    level: str | None  # None: a VQ-VAE's one grid
    start: int  # the step its first code is drawn at
    grid: np.ndarray  # (h, w) int64, its codes once drawn


@dataclass
class Frames:
    """The learned prior filling one grid in raster order (a hierarchy's grids one level after another, top
    first): frame t holds the first t codes, the grids' other cells decoded as their level's background code."""

    images: np.ndarray  # (T + 1, H, W, C) uint8 for T codes in all
    indices: np.ndarray  # (T + 1, h, w) int64, the last level's grid after each step, -1 where not yet drawn
    top_codes: np.ndarray  # (T, 5) the most likely codes at each step
    top_probs: np.ndarray  # (T, 5) their probabilities
    drawn_probs: np.ndarray  # (T,) the probability of the code drawn at each step
    stages: list[FrameStage] = field(default_factory=list)  # each level's, top first


@dataclass
class CodeInfo:
    code: int
    tile: np.ndarray  # (t, t, C) uint8
    exemplars: np.ndarray  # (E', t, t, C) uint8, only real ones
    nearest: list[int]
    nearest_tiles: np.ndarray  # (N, t, t, C) uint8, the nearest codes' tiles in the same order
    usage: int
    usage_fraction: float
    usage_by_class: list[int]


@dataclass
class ClassCodes:
    """Codes that one class uses far more than the others, for a per-class picture."""

    codes: list[int]  # grouped by the class they stand for
    shares: list[list[float]]  # (codes, classes): the share of each code's held-out uses by class


@dataclass
class Sheet:
    """One page of the codebook's tiles, each with its code number under it."""

    tiles: LabelledTiles  # the picture, and where each cell lies in it
    order: list[int]  # the code in each cell, row by row
    page: int
    pages: int


class Explorer:
    """One checkpoint folder, loaded for interactive use (thread-safe reads)."""

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu"):
        """device: where the VQ-VAE and its learned priors compute (placement.py); pictures and codes stay on
        the CPU."""
        self.folder = Path(folder)
        if not (self.folder / ANALYSIS).is_file():  # made once, by the command line: never inside a request
            named = f"{self.folder.parent.name}/{self.folder.name}"  # as the picker shows it, not the server's path
            raise CheckpointError(
                f"{named} has no {ANALYSIS}, which the app reads: make it with `python -m vqvae analyse {named}`"
            )
        self.checkpoint = ckpt.load_checkpoint(self.folder, device)
        self.model = self.checkpoint.model.eval()
        self.analyses: dict[str | None, Analysis] = load_level_analysis(self.folder, self.model)
        self.level: str | None = next(iter(self.analyses))  # the level its grids and codebook are of: the top
        self.analysis = self.analyses[self.level]
        self.priors = self._load_priors()
        self._views: dict[str | None, Explorer] = {self.level: self}

    # --- what the checkpoint is -----------------------------------------------------------

    @property
    def levels(self) -> list[str]:
        """A VQ-VAE-2's levels, top first; none for a VQ-VAE's one grid."""
        return [level for level in self.analyses if level is not None]

    def at(self, level: str | None) -> Explorer:
        """The same checkpoint seen at one level of its hierarchy: that level's grids, codebook, usage and
        atlas; decoding keeps the other levels' codes. A VQ-VAE's one grid is level None (or "")."""
        level = level or None
        if level not in self.analyses:
            levels = ", ".join(self.levels) or "none: this model has one grid of codes"
            raise InputError(f"no level {level!r}; the levels are {levels}")
        if level not in self._views:
            view = copy.copy(self)
            view.level, view.analysis = level, self.analyses[level]
            self._views[level] = view
        return self._views[level]

    @property
    def num_embeddings(self) -> int:
        return self.model.num_embeddings

    @property
    def latent_shape(self) -> tuple[int, int]:
        return code_shapes(self.model)[self.level]

    @property
    def class_names(self) -> list[str]:
        return list(self.checkpoint.data.class_names)

    @property
    def fitting(self) -> Fitting:
        """How pictures from a person are fitted to this model, and what the pages call its pictures
        (`fitting.noun`: "digit" only for a digit model)."""
        return fitting_for(self.checkpoint.config.model.in_channels, self.class_names)

    @property
    def conditional(self) -> bool:
        learned = self.priors.get("learned")
        return learned is not None and learned.num_classes > 0

    @property
    def heldout_count(self) -> int:
        return len(self.analysis.images)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.checkpoint.history

    @property
    def metrics(self) -> dict[str, Any]:
        return self.checkpoint.metrics

    def _load_priors(self) -> dict[str, CodesPrior]:
        """uniform, unigram and (when trained, for every level) learned priors over all the grids."""
        fingerprint = ckpt.model_fingerprint(self.model)
        if (self.folder / ckpt.CODES).exists():
            train = self._training_codes(fingerprint)
        else:  # the unigram prior counts the held-out codes
            train = {level: analysis.indices for level, analysis in self.analyses.items()}
        compared = level_priors_to_compare(self.folder, self.model, train)
        return {name: CodesPrior(self.model, priors) for name, priors in compared.items()}

    def _training_codes(self, fingerprint: str) -> Codes:
        config = self.checkpoint.config
        if self.levels:
            codes = ckpt.load_level_codes(self.folder, config, fingerprint=fingerprint)
            return {level: level_codes.train for level, level_codes in codes.items()}
        return {None: ckpt.load_codes(self.folder, config, fingerprint=fingerprint).train}

    @functools.cached_property
    def heldout_bits(self) -> dict[str, float]:
        """Each prior's mean -log2 p(z) per latent (of every level) on the held-out codes: as `evaluate`
        measured it while the files it measured are unchanged, else computed on first use (the learned prior
        scores every held-out grid, so never when the folder opens)."""
        return self._evaluated_bits() or self._computed_bits()

    def _evaluated_bits(self) -> dict[str, float] | None:
        measured = self.metrics.get("prior", {})
        shapes = code_shapes(self.model)
        keys = {level: "" if level is None else f"{level}_" for level in shapes}
        if not all(f"{keys[level]}{name}_bits_per_latent" in measured for name in self.priors for level in shapes):
            return None
        if self.metrics.get("measured") != ckpt.measured_files(self.folder):  # by content: a fresh clone's
            return None  # files all have new times
        latents = sum(h * w for h, w in shapes.values())

        def bits(name: str) -> float:  # per latent of every level together
            return sum(float(measured[f"{keys[lv]}{name}_bits_per_latent"]) * h * w for lv, (h, w) in shapes.items())

        return {name: bits(name) / latents for name in self.priors}

    @torch.inference_mode()
    def _computed_bits(self) -> dict[str, float]:
        labels = self.analysis.labels if self.conditional else None
        codes = {level: analysis.indices for level, analysis in self.analyses.items()}
        bits = {}
        for name, prior in self.priors.items():
            nats = torch.cat([-prior.log_prob(_rows(codes, rows), _at(labels, rows)) for rows in _batches(codes)])
            bits[name] = float(nats.mean()) / (prior.latents * math.log(2))
        return bits

    # --- images and their codes -----------------------------------------------------------

    def heldout_label(self, index: int) -> str:
        label = int(self.analysis.labels[self._heldout_index(index)])
        return self.class_names[label] if 0 <= label < len(self.class_names) else ""

    def _heldout_index(self, index: int) -> int:
        number = whole_number(index, "a held-out image number", InputError)
        if not 0 <= number < self.heldout_count:
            raise InputError(f"held-out image {index} does not exist; choose 0 to {self.heldout_count - 1}")
        return number

    @torch.inference_mode()
    def _decode(self, codes: Codes, x: torch.Tensor | None) -> Decoded:
        """Every level's (1, h, w) grid -> the Decoded of this explorer's level."""
        x_hat = decode_codes(self.model, codes).clamp(0, 1)  # -> (1, C, H, W)
        psnr = None if x is None else psnr_db(float((x_hat - x).pow(2).mean()))
        image = None if x is None else to_uint8(x)[0]
        levels = {level: grid[0].numpy().copy() for level, grid in codes.items() if level is not None}
        return Decoded(image, codes[self.level][0].numpy().copy(), to_uint8(x_hat)[0], psnr, levels)

    @torch.inference_mode()
    def reconstruct_heldout(self, index: int) -> Decoded:
        x = self.analysis.images[self._heldout_index(index)][None].float() / 255  # (1, C, H, W)
        return self._decode(encode_codes(self.model, x), x)

    @torch.inference_mode()
    def reconstruct_picture(self, rgb: np.ndarray) -> Decoded:
        """rgb: (H, W, 3) uint8 of any size, fitted to the model's input first (see `fitting`)."""
        size = self.checkpoint.config.model.image_size
        x = torch.from_numpy(fit_image(rgb, size, self.fitting))  # (1, C, S, S)
        return self._decode(encode_codes(self.model, x), x)

    def check_indices(self, indices: Any, level: str | None = ...) -> torch.Tensor:
        """A grid from a request (of this explorer's level, or of `level`) -> (1, h, w) int64, or InputError
        naming what is wrong."""
        level = self.level if level is ... else level
        shape = code_shapes(self.model)[level]
        named = "a code grid" if level is None else f"a {level} code grid"
        try:
            array = np.asarray(indices)
            values = array if array.dtype.kind in "iu" else array.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as error:
            raise InputError(f"{named} must hold whole numbers: {error}") from error
        if values.dtype.kind == "f" and not bool(np.all(np.isfinite(values) & (values == np.round(values)))):
            raise InputError(f"{named} must hold whole numbers")  # 1.5 is not code 1
        grid = torch.as_tensor(values.astype(np.int64))
        if tuple(grid.shape) != shape:
            raise InputError(f"{named} must be {shape}; got {tuple(grid.shape)}")
        if int(grid.min()) < 0 or int(grid.max()) >= self.num_embeddings:
            raise InputError(f"codes must lie in 0 to {self.num_embeddings - 1}")
        return grid[None]

    def check_code(self, code: Any) -> int:
        number = None if code is None else whole_number(code, "a code", InputError)
        if number is None or not 0 <= number < self.num_embeddings:
            raise InputError(f"code {code} does not exist; choose 0 to {self.num_embeddings - 1}")
        return number

    def decode(self, indices: Any, reference: np.ndarray | None = None, levels: Any = None) -> Decoded:
        """Decode a (possibly edited) grid of this explorer's level, a hierarchy's other levels from `levels`
        (level -> grid, as a Decoded holds them); PSNR against `reference` (H, W, C) uint8 when given."""
        codes = {self.level: self.check_indices(indices)}
        if self.levels:
            if not isinstance(levels, dict):
                raise InputError(f"a VQ-VAE-2 decodes every level's grid together ({', '.join(self.levels)})")
            for level in self.levels:
                if level != self.level:
                    codes[level] = self.check_indices(levels.get(level), level)
            codes = {level: codes[level] for level in self.levels}  # top first
        x = None if reference is None else torch.as_tensor(reference).permute(2, 0, 1)[None].float() / 255
        return self._decode(codes, x)

    def cell_at(self, x: float, y: float) -> tuple[int, int]:
        """The latent cell (row, col) over image pixel (x, y)."""
        size = self.checkpoint.config.model.image_size
        h, w = self.latent_shape
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"pixel ({x!r}, {y!r}) is not a position") from None
        if not (0 <= x < size and 0 <= y < size):
            raise InputError(f"pixel ({x}, {y}) is outside the {size}x{size} image")
        return int(y) * h // size, int(x) * w // size

    def set_code(self, indices: Any, row: int, col: int, code: int) -> np.ndarray:
        grid = self.check_indices(indices)[0].numpy().copy()
        h, w = self.latent_shape
        r, c = whole_number(row, "a row", InputError), whole_number(col, "a column", InputError)
        if not (0 <= r < h and 0 <= c < w):
            raise InputError(f"position ({row}, {col}) is outside the {h}x{w} grid")
        grid[r, c] = self.check_code(code)
        return grid

    def replace_code(self, indices: Any, old: int, new: int) -> np.ndarray:
        grid = self.check_indices(indices)[0].numpy().copy()
        grid[grid == self.check_code(old)] = self.check_code(new)
        return grid

    def changed_cells(self, before: Any, after: Any) -> list[tuple[int, int]]:
        """The (row, col) cells where two grids differ, row by row."""
        a, b = self.check_indices(before)[0], self.check_indices(after)[0]
        return [(int(r), int(c)) for r, c in torch.nonzero(a != b).tolist()]

    # --- the codebook -------------------------------------------------------------------

    def code(self, code: int) -> CodeInfo:
        k = self.check_code(code)
        a = self.analysis
        usage = a.usage[k]
        return CodeInfo(
            code=k,
            tile=to_uint8(a.tiles[k : k + 1])[0],
            exemplars=to_uint8(a.exemplars[k, : int(a.exemplar_count[k])]),
            nearest=a.nearest[k].tolist(),
            nearest_tiles=to_uint8(a.tiles[a.nearest[k]]),
            usage=int(usage),
            usage_fraction=float(usage) / max(1, int(a.usage.sum())),
            usage_by_class=a.usage_by_class[:, k].tolist(),
        )

    def tiles(self, codes: list[int]) -> np.ndarray:
        """What each of `codes` paints, in the order given: (N, t, t, C) uint8."""
        return to_uint8(self.analysis.tiles[[self.check_code(k) for k in codes]])

    def usage_order(self) -> list[int]:
        """Codes from most to least used on the held-out split (ties by code number)."""
        return sorted(range(self.num_embeddings), key=lambda k: (-int(self.analysis.usage[k]), k))

    def usage_summary(self) -> dict[str, Any]:
        usage, by_class = self.analysis.usage, self.analysis.usage_by_class.double()
        return {
            "num_embeddings": self.num_embeddings,
            "perplexity": float(perplexity(usage)),
            "codes_used": int((usage > 0).sum()),
            "dead_codes": int((usage == 0).sum()),
            "counts": usage.tolist(),
            "counts_by_class": self.analysis.usage_by_class.tolist(),
            "class_shares": (by_class / by_class.sum(1, keepdim=True).clamp_min(1)).tolist(),
            "latents": int(usage.sum()),
        }

    def dominant_class(self) -> list[int]:
        """Per code, the class it appears in most (-1 for unused codes or unlabelled data)."""
        by_class = self.analysis.usage_by_class
        if by_class.shape[0] == 0:
            return [-1] * self.num_embeddings
        return torch.where(by_class.sum(0) > 0, by_class.argmax(0), -1).tolist()

    def class_specific_codes(self, per_class: int = 6) -> ClassCodes:
        """For each class, the `per_class` codes whose held-out uses come most from it, among the
        codes used at least as often as the median code; grouped class by class."""
        by_class = self.analysis.usage_by_class.double()  # (classes, K)
        usage = by_class.sum(0)
        if by_class.shape[0] == 0 or usage.sum() == 0:
            return ClassCodes([], [])
        shares = by_class / usage.clamp_min(1)  # p(class | code)
        busy = usage >= usage[usage > 0].median()
        codes: list[int] = []
        for c in range(by_class.shape[0]):
            ranked = torch.where(busy, shares[c], -1.0).argsort(descending=True, stable=True).tolist()
            codes += [k for k in ranked if k not in codes and busy[k]][:per_class]
        return ClassCodes(codes, shares[:, codes].T.tolist())

    def projection(self, name: str) -> np.ndarray:
        if name not in self.analysis.projections:
            raise InputError(f"no {name} projection; this checkpoint has {', '.join(self.analysis.projections)}")
        return self.analysis.projections[name].numpy()

    def sheet(
        self,
        order: str = "code",
        columns: int = 32,
        page: int | None = 0,
        per_page: int | None = None,
        chosen: int | None = None,
        scale: int = 1,
    ) -> Sheet:
        """One page of every code's tile (by code number or by held-out usage), each enlarged `scale` times
        with its number under it and `chosen` framed; page None is the page that holds `chosen`."""
        if order not in ("code", "usage"):
            raise InputError(f"order the codes by code or by usage, not {order!r}")
        codes = self.usage_order() if order == "usage" else list(range(self.num_embeddings))
        per_page = per_page or len(codes)
        pages = -(-len(codes) // per_page)
        chosen = None if chosen is None else self.check_code(chosen)
        if page is None:
            page = 0 if chosen is None else codes.index(chosen) // per_page
        page = whole_number(page, "a page", InputError)
        if not 0 <= page < pages:
            raise InputError(f"page {page + 1} does not exist; there are {pages}")
        shown = codes[page * per_page : (page + 1) * per_page]
        marked = shown.index(chosen) if chosen in shown else None
        tiles = labelled_tiles(to_uint8(self.analysis.tiles[shown]), [str(k) for k in shown], columns, scale, marked)
        return Sheet(tiles, shown, page, pages)

    def telling_code(self) -> int:
        """A code worth showing first: among the busiest quarter of the used codes, the one whose tile has
        the most contrast (the busiest code of all is usually the background's flat black)."""
        usage = self.analysis.usage
        contrast = self.analysis.tiles.flatten(1).float().std(1)  # (K, C, t, t) -> (K,)
        used = usage[usage > 0].double()
        if len(used) == 0:
            return int(contrast.argmax())
        busy = usage >= used.quantile(0.75)
        return int(torch.where(busy, contrast, -1.0).argmax())

    def main_code(self, index: int) -> int:
        """The code held-out image `index` uses most apart from the background code (that one if no other)."""
        grid = self.analysis.indices[self._heldout_index(index)]  # (h, w)
        counts = torch.bincount(grid.reshape(-1), minlength=self.num_embeddings)
        counts[self.analysis.background_code] = 0
        return int(counts.argmax()) if int(counts.max()) > 0 else self.analysis.background_code

    # --- priors -------------------------------------------------------------------------

    def _check_prior(self, prior: Any) -> str:
        if not isinstance(prior, str) or prior not in self.priors:
            raise InputError(f"no {prior} prior in this checkpoint; it has {', '.join(self.priors)}")
        return prior

    def _check_sampling(
        self, n: Any, label: Any, temperature: Any, seed: Any
    ) -> tuple[int, float, int, torch.Tensor | None]:
        """n, temperature and seed as numbers, and the labels to condition on: (n,) int64, or None
        for an unconditional checkpoint.

        On a class-conditional checkpoint, label None ("any class") draws one class per sample
        from `seed`: the learned prior, and the bits it assigns to any prior's grids, need one.
        """
        n = whole_number(n, "the number of samples", InputError)
        if not 1 <= n <= MAX_SAMPLES:
            raise InputError(f"draw between 1 and {MAX_SAMPLES} samples")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"temperature must be a number; got {temperature!r}") from None
        if not (math.isfinite(temperature) and 0 <= temperature <= 10):
            raise InputError("temperature must be between 0 and 10")
        seed = whole_number(seed, "the seed", InputError)
        if not -(2**63) <= seed < 2**64:  # what torch.Generator.manual_seed takes
            raise InputError("the seed is too large")
        if not self.conditional:
            return n, temperature, seed, None
        classes = self.priors["learned"].num_classes
        if label is None:
            return n, temperature, seed, torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed))
        number = whole_number(label, "a class", InputError)
        if not 0 <= number < classes:
            raise InputError(f"class {label} does not exist; choose 0 to {classes - 1}")
        return n, temperature, seed, torch.full((n,), number, dtype=torch.int64)

    def sample(self, prior: str, n: int, label: int | None = None, temperature: float = 1.0, seed: int = 0) -> Samples:
        """n grids from one prior (the class only steers the learned one), decoded."""
        return self._draw([self._check_prior(prior)], n, label, temperature, seed)[prior]

    def compare(self, n: int, label: int | None = None, temperature: float = 1.0, seed: int = 0) -> dict[str, Samples]:
        """n grids from every prior with the same seed."""
        return self._draw(list(self.priors), n, label, temperature, seed)

    @torch.inference_mode()
    def _draw(self, names: list[str], n: Any, label: Any, temperature: Any, seed: Any) -> dict[str, Samples]:
        """Sample each named prior, decode the grids and score them under the judge prior.

        The learned prior scores its own grids as it draws them, the slow part (thousands of small
        steps), so this thread starts on it at once; meanwhile a second thread draws the other
        priors' grids, scores them in one batch (one pass of the learned prior) and decodes them,
        on the other core.
        """
        n, temperature, seed, labels = self._check_sampling(n, label, temperature, seed)
        options = {"temperature": temperature, "seed": seed}
        quick = [name for name in names if name != "learned"]
        beside = _BESIDE.submit(self._draw_and_score, quick, n, options, labels) if quick else None
        drawn: dict[str, Samples] = {}
        if "learned" in names:
            codes, log_p = self.priors["learned"].sample_scored(n, labels=labels, **options)
            drawn["learned"] = self._samples("learned", codes, log_p)
        if beside is not None:
            drawn |= beside.result()
        return {name: drawn[name] for name in names}

    def _draw_and_score(
        self, names: list[str], n: int, options: dict[str, Any], labels: torch.Tensor | None
    ) -> dict[str, Samples]:
        """n samples from each named prior -> their Samples, scored under the judge in one batch."""
        with torch.inference_mode():  # per thread: this runs beside the request's own thread
            drawn = [self.priors[name].sample(n, **options) for name in names]
            every = None if labels is None else labels.repeat(len(names))
            together = {level: torch.cat([codes[level] for codes in drawn]) for level in drawn[0]}
            log_p = self.priors[self.judge].log_prob(together, every).reshape(len(names), n)
            return {name: self._samples(name, codes, log_p[p]) for p, (name, codes) in enumerate(zip(names, drawn))}

    def _samples(self, name: str, codes: Codes, log_p: torch.Tensor) -> Samples:
        """Every level's grids (n, h, w) and their log p(z) in nats (n,) -> decoded Samples with bits per latent."""
        images = to_uint8(decode_codes(self.model, codes))  # (n, H, W, C)
        latents = self.priors[name].latents
        return Samples(name, images, codes[self.level].numpy(), float(-log_p.mean() / (latents * math.log(2))))

    @property
    def judge(self) -> str:
        """The prior that scores every sample: the learned one, else the unigram one."""
        return "learned" if "learned" in self.priors else "unigram"

    @torch.inference_mode()
    def sample_frames(self, label: int | None = None, temperature: float = 1.0, seed: int = 0) -> Frames:
        """One sample from the learned prior, and its grids after each step (a hierarchy's top grid first)."""
        self._check_prior("learned")
        _, temperature, seed, labels = self._check_sampling(1, label, temperature, seed)
        prior = self.priors["learned"]
        codes = prior.sample(1, labels=labels, temperature=temperature, seed=seed)  # each level's (1, h, w)
        shown = {level: torch.full_like(grid, self.analyses[level].background_code) for level, grid in codes.items()}
        parts, stages, start = [], [], 0
        for level, grid in codes.items():
            parts.append(self._stage(prior, codes, labels, shown, level, first=not stages))
            stages.append(FrameStage(level, start, grid[0].numpy().copy()))
            start += grid.numel()
            shown[level] = grid
        images, top_codes, top_probs, drawn_probs = (np.concatenate(part) for part in zip(*parts))
        grid, begun = codes[stages[-1].level][0], stages[-1].start
        position = torch.arange(grid.numel()).reshape(grid.shape)
        last = torch.where(position < torch.arange(start + 1)[:, None, None] - begun, grid, -1)  # (T + 1, h, w)
        return Frames(images, last.numpy(), top_codes, top_probs, drawn_probs, stages)

    def _stage(
        self,
        prior: CodesPrior,
        codes: Codes,
        labels: torch.Tensor | None,
        shown: Codes,
        level: str | None,
        first: bool,
    ) -> tuple[np.ndarray, ...]:
        """One level drawn a code at a time, the levels above it whole and those below at `shown` (their
        background): its frames (from step 0 for the first level; a later level's step 0 is the end of the one
        before), and at each step the 5 likeliest codes, their probabilities and the drawn code's."""
        grid = codes[level]  # (1, h, w)
        h, w = grid.shape[1:]
        steps = torch.arange(0 if first else 1, h * w + 1)[:, None, None]  # frame t shows positions < t
        drawn = torch.where(torch.arange(h * w).reshape(1, h, w) < steps, grid, shown[level])  # (steps, h, w)
        every = {name: drawn if name == level else grids.expand(len(steps), -1, -1) for name, grids in shown.items()}
        probs = prior.logits(level, codes, labels).softmax(1)[0]  # (K, h, w): p(z_t | z_<t, above) along the path
        top = probs.reshape(self.num_embeddings, -1).T.topk(5, dim=1)  # (h*w, 5)
        chosen = probs.gather(0, grid).reshape(-1)  # (1, h, w) -> (h*w,)
        return to_uint8(decode_codes(self.model, every)), top.indices.numpy(), top.values.numpy(), chosen.numpy()

    # --- a hierarchy's levels -------------------------------------------------------------

    @torch.inference_mode()
    def study_levels(
        self, index: int, donor: int, resamples: int = RESAMPLES, temperature: float = 1.0, seed: int = 0
    ) -> LevelsStudy:
        """What each level of a VQ-VAE-2 carries for held-out image `index` (levels.py), the top codes swapped
        for those of held-out image `donor`, the levels below the top drawn again `resamples` times."""
        if not self.levels:
            raise InputError("this checkpoint has one grid of codes: the Levels page needs a VQ-VAE-2")
        if "learned" not in self.priors:
            raise InputError("no learned priors in this checkpoint; train them with `python -m vqvae train-prior`")
        resamples = whole_number(resamples, "the number of resamples", InputError)
        if not 1 <= resamples <= MAX_RESAMPLES:
            raise InputError(f"resample between 1 and {MAX_RESAMPLES} times")
        _, temperature, seed, _ = self._check_sampling(1, None, temperature, seed)
        rows = [self._heldout_index(index), self._heldout_index(donor)]
        x, other = (self.analysis.images[row][None].float() / 255 for row in rows)  # (1, C, H, W) each
        label = self.analysis.labels[rows[0]][None] if self.conditional else None
        priors = self.priors["learned"].priors
        return study_levels(self.model, priors, x, other, label, resamples, temperature, seed)


def _batches(codes: Codes, size: int = 500) -> list[slice]:
    count = len(next(iter(codes.values())))
    return [slice(start, start + size) for start in range(0, count, size)]


def _rows(codes: Codes, rows: slice) -> Codes:
    return {level: grids[rows] for level, grids in codes.items()}


def _at(labels: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    return None if labels is None else labels[rows]


def use_threads(threads: int) -> None:
    """Intra-op threads for each request. The app's requests are small: one thread per request
    draws samples faster inside the server than two (the bench measures it) and leaves the other
    core to a second, concurrent request."""
    torch.set_num_threads(max(1, int(threads)))


def use_device(name: str) -> torch.device:
    """Where the checkpoints opened from now on compute: "auto" is a CUDA GPU when there is one (else Apple's
    MPS, else the CPU). A device that is not here is refused with the project's own message."""
    global _device
    _device = pick_device(name)
    return _device


_device = torch.device("cpu")
_cache: dict[Path, tuple[tuple, Explorer]] = {}
_lock = threading.Lock()
WATCHED = (ckpt.CONFIG, ckpt.WEIGHTS, ANALYSIS, ckpt.METRICS)  # and every prior's weights


def _signature(folder: Path) -> tuple:
    priors = sorted(p.name for p in folder.glob("prior*.safetensors") if not p.name.endswith("_state.safetensors"))
    names = (*WATCHED, ckpt.PRIOR, *priors)
    return tuple((folder / name).stat().st_mtime_ns if (folder / name).exists() else 0 for name in names)


def open_explorer(folder: str | Path) -> Explorer:
    """The folder's Explorer, loaded on first use and again only when its files change."""
    folder = Path(folder).resolve()
    with _lock:
        signature = _signature(folder)
        cached = _cache.get(folder)
        if cached is None or cached[0] != signature:
            _cache[folder] = (_signature(folder), Explorer(folder, _device))
            while len(_cache) > 4:
                _cache.pop(next(iter(_cache)))
        return _cache[folder][1]
