"""What the app shows instantly, computed once per checkpoint and kept in analysis.safetensors.

    projection_pca / projection_umap  (K, 2)  the codebook e_1..e_K in two dimensions
    usage / usage_by_class            (K,) / (classes, K)  code counts on the held-out split
    tiles                             (K, C, t, t)  what each code paints: its mean decoded window
    exemplars                         (K, E, C, t, t)  held-out patches whose z_e lies nearest each code
    nearest                           (K, N)  the closest other codes in the codebook
    images, labels, indices           the held-out images (uint8), their labels and code grids

A VQ-VAE-2 has one of each per level (Razavi et al. 2019), kept in the same file, each level's
tensors under its name ("top.usage"); the held-out images and labels are kept once.

UMAP (umap-learn) is imported here only, so nothing slow happens when the app starts; a
checkpoint without it gets the PCA projection alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .codes import encode_levels
from .data import Dataset, load_split
from .errors import CheckpointError
from .families import Model
from .files import ANALYSIS, ANALYSIS_IMAGES
from .hierarchy import VQVAE2
from .levels import LevelView

log = logging.getLogger(__name__)

MAX_IMAGES = ANALYSIS_IMAGES  # held-out images kept in the file (all of them for mnist5k's 500)
EXEMPLARS = 8
NEAREST = 8
UMAP_MIN_CODES = 8  # below this a 2-D embedding of the codebook is not worth fitting


@dataclass
class Analysis:
    projections: dict[str, torch.Tensor]  # name -> (K, 2) float32
    usage: torch.Tensor  # (K,) int64, held-out code counts
    usage_by_class: torch.Tensor  # (classes, K) int64; (0, K) without labels
    tiles: torch.Tensor  # (K, C, t, t) uint8
    exemplars: torch.Tensor  # (K, E, C, t, t) uint8, black where a code has fewer than E uses
    exemplar_count: torch.Tensor  # (K,) int64, how many of the E exemplars are real
    nearest: torch.Tensor  # (K, N) int64
    images: torch.Tensor  # (M, C, H, W) uint8, held-out
    labels: torch.Tensor  # (M,) int64, -1 where unlabelled
    indices: torch.Tensor  # (M, h, w) int64
    background_code: int  # the code most often found in a grid's corners

    @property
    def num_embeddings(self) -> int:
        return self.usage.shape[0]


def tile_size(view: LevelView) -> int:
    """Side of the window shown around one latent position: three cells, at most the image."""
    cell = view.image_size // view.latent_shape[0]
    return min(3 * cell, view.image_size)


def uint8_tensor(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8, staying a tensor: (N, C, H, W) float -> (N, C, H, W) uint8."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def windows(images: torch.Tensor, cell: int, size: int, grid: tuple[int, int]) -> torch.Tensor:
    """The size x size window centred on every latent cell of each image; outside the image, its edge
    pixels carry on (black beyond MNIST's black edges, white beyond an emoji's white ones).

    images (N, C, H, W) -> (N, h, w, C, size, size), a view of one padded copy (nothing per window).
    """
    h, w = grid
    offset = size + cell // 2 - size // 2  # where the window of cell (0, 0) starts in the padded image
    padded = torch.nn.functional.pad(images, (size, size, size, size), mode="replicate")  # (N, C, H + 2s, W + 2s)
    crops = padded[:, :, offset:, offset:].unfold(2, size, cell).unfold(3, size, cell)  # (N, C, h', w', s, s)
    return crops[:, :, :h, :w].permute(0, 2, 3, 1, 4, 5)


def background_code(indices: torch.Tensor) -> int:
    """The most frequent code at the four corners of the grids (N, h, w): the 'empty' code."""
    corners = torch.cat([indices[:, 0, 0], indices[:, 0, -1], indices[:, -1, 0], indices[:, -1, -1]])
    return int(torch.bincount(corners).argmax())


@torch.inference_mode()
def isolated_tiles(view: LevelView, background: int) -> torch.Tensor:
    """Each code alone at the centre of a background grid, decoded and cropped: (K, C, t, t) in [0, 1]."""
    h, w = view.latent_shape
    k = view.num_embeddings
    grids = torch.full((k, h, w), background, dtype=torch.int64)
    grids[:, h // 2, w // 2] = torch.arange(k)
    decoded = torch.cat([view.decode_alone(grids[i : i + 256]) for i in range(0, k, 256)])
    cell = view.image_size // h
    return windows(decoded, cell, tile_size(view), (h, w))[:, h // 2, w // 2].clone()


@torch.inference_mode()
def code_tiles(view: LevelView, decoded: torch.Tensor, indices: torch.Tensor, background: int) -> torch.Tensor:
    """What each code paints: (K, C, t, t) in [0, 1], from the held-out images' reconstructions `decoded`
    (M, C, H, W) and their codes `indices` (M, h, w) at this level.

    The decoder draws a code differently in each context, and alone on a blank grid it paints
    only a few faint pixels. So a code's tile is the mean of the decoded windows around its
    held-out uses; a code never used there gets its lone decode instead.
    """
    m, h, w = indices.shape
    cell, size = view.image_size // h, tile_size(view)
    around = windows(decoded, cell, size, (h, w)).reshape(m * h * w, -1, size, size)  # raster order, as indices
    k = view.num_embeddings
    sums = torch.zeros(k, *around.shape[1:]).index_add_(0, indices.reshape(-1), around)
    counts = torch.bincount(indices.reshape(-1), minlength=k).float()
    tiles = sums / counts.clamp_min(1)[:, None, None, None]
    unused = counts == 0
    if unused.any():
        tiles[unused] = isolated_tiles(view, background)[unused]
    return tiles


@torch.inference_mode()
def code_exemplars(view: LevelView, images: torch.Tensor, count: int = EXEMPLARS) -> tuple[torch.Tensor, torch.Tensor]:
    """For each code, the `count` held-out patches whose z_e is nearest to it (among those it quantises)."""
    z_e = torch.cat([view.z_e(images[i : i + 500]) for i in range(0, len(images), 500)])  # (M, D, h, w)
    m, d, h, w = z_e.shape
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (M, D, h, w) -> (M*h*w, D)
    codebook = view.quantizer.codebook.detach().cpu()  # (K, D), where the z_e came back to
    indices = view.quantizer.indices(z_e).reshape(-1)  # (M*h*w,)
    distance = (flat - codebook[indices]).pow(2).sum(1)
    size, cell = tile_size(view), view.image_size // h
    k = view.num_embeddings
    exemplars = torch.zeros(k, count, images.shape[1], size, size)
    found = torch.zeros(k, dtype=torch.int64)
    around = windows(images, cell, size, (h, w))  # (M, h, w, C, t, t)
    order = torch.argsort(distance)
    ranked = indices[order]  # positions sorted by distance, each with its code
    for code in torch.unique(indices).tolist():
        best = order[ranked == code][:count]  # flat positions, nearest first
        image, pos = best // (h * w), best % (h * w)
        exemplars[code, : len(best)] = around[image, pos // w, pos % w]
        found[code] = len(best)
    return exemplars, found


def nearest_codes(codebook: torch.Tensor, count: int = NEAREST) -> torch.Tensor:
    """codebook (K, D) -> (K, count) indices of each code's nearest other codes, nearest first."""
    distance = torch.cdist(codebook, codebook)
    distance.fill_diagonal_(float("inf"))
    count = min(count, codebook.shape[0] - 1)
    return distance.topk(count, largest=False).indices


def pca_2d(codebook: torch.Tensor) -> torch.Tensor:
    """codebook (K, D) -> (K, 2), the first two principal components."""
    centred = codebook - codebook.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ v[:2].T).float()  # (K, D) @ (D, 2)


def umap_2d(codebook: torch.Tensor, seed: int = 0) -> torch.Tensor | None:
    """codebook (K, D) -> (K, 2) UMAP embedding, or None when umap-learn is missing or K is tiny."""
    if codebook.shape[0] < UMAP_MIN_CODES:
        return None
    try:
        import umap  # slow to import (numba): only ever here
    except ImportError:
        log.warning("umap-learn is not installed; the atlas shows PCA only")
        return None
    neighbours = min(15, codebook.shape[0] - 1)
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=0.1, random_state=seed, n_jobs=1)
    return torch.as_tensor(reducer.fit_transform(codebook.numpy()), dtype=torch.float32)


def usage_counts(
    indices: torch.Tensor, labels: torch.Tensor, k: int, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Code counts over grids (M, h, w), overall (K,) and per class (classes, K)."""
    usage = torch.bincount(indices.reshape(-1), minlength=k)
    by_class = torch.zeros(classes, k, dtype=torch.int64)
    for c in range(classes):
        grids = indices[labels == c]
        if len(grids):
            by_class[c] = torch.bincount(grids.reshape(-1), minlength=k)
    return usage, by_class


def analyse_model(model: Model, test: Dataset, with_umap: bool = True) -> Analysis:
    """Everything the app shows for a VQ-VAE and its held-out data."""
    return analyse_levels(model, test, with_umap)[None]


def analyse_levels(model: Model, test: Dataset, with_umap: bool = True) -> dict[str | None, Analysis]:
    """Everything the app shows for each level of a model (top first; the key None for a VQ-VAE's one grid)."""
    model.eval()
    test = test.subset(torch.arange(min(len(test), MAX_IMAGES)))
    grids = encode_levels(model, test.images)  # each level's (M, h_i, w_i)
    backgrounds = {level: background_code(indices) for level, indices in grids.items()}
    fill = {level: code for level, code in backgrounds.items() if level is not None}
    views = {level: LevelView(model, level, fill) for level in grids}
    first = next(iter(views.values()))
    decoded = torch.cat([first.reconstruct(test.images[i : i + 500]) for i in range(0, len(test), 500)])
    return {
        level: analyse_view(view, test, grids[level], decoded, backgrounds[level], with_umap)
        for level, view in views.items()
    }


def analyse_view(
    view: LevelView, test: Dataset, indices: torch.Tensor, decoded: torch.Tensor, background: int, with_umap: bool
) -> Analysis:
    """One grid's analysis: its codes `indices` (M, h, w) of the held-out images, whose reconstructions from
    every level are `decoded` (M, C, H, W)."""
    codebook = view.quantizer.codebook.detach().float().cpu()
    k = view.num_embeddings
    usage, by_class = usage_counts(indices, test.labels, k, len(test.class_names) if (test.labels >= 0).any() else 0)
    exemplars, found = code_exemplars(view, test.images)
    projections = {"pca": pca_2d(codebook)}
    if with_umap and (embedding := umap_2d(codebook)) is not None:
        projections["umap"] = embedding
    return Analysis(
        projections=projections,
        usage=usage,
        usage_by_class=by_class,
        tiles=uint8_tensor(code_tiles(view, decoded, indices, background)),
        exemplars=uint8_tensor(exemplars),
        exemplar_count=found,
        nearest=nearest_codes(codebook),
        images=uint8_tensor(test.images),
        labels=test.labels,
        indices=indices,
        background_code=background,
    )


PER_GRID = ("usage", "usage_by_class", "tiles", "exemplars", "exemplar_count", "nearest", "indices")
SHARED = ("images", "labels")  # the held-out images, kept once for every level


def _prefix(level: str | None) -> str:
    """Where a level's tensors are in the file: "top.usage"; a VQ-VAE's have no prefix."""
    return "" if level is None else f"{level}."


def save_analysis(folder: Path, analysis: Analysis, *, fingerprint: str | None = None) -> None:
    save_level_analysis(folder, {None: analysis}, fingerprint=fingerprint)


def save_level_analysis(folder: Path, analyses: dict[str | None, Analysis], *, fingerprint: str | None = None) -> None:
    """Every level's analysis in one file (fingerprint: of every codebook)."""
    tensors = {}
    for level, analysis in analyses.items():
        prefix = _prefix(level)
        tensors |= {f"{prefix}projection_{name}": p for name, p in analysis.projections.items()}
        tensors |= {f"{prefix}{name}": getattr(analysis, name) for name in PER_GRID}
        tensors[f"{prefix}background_code"] = torch.tensor(analysis.background_code)
    first = next(iter(analyses.values()))
    tensors |= {name: getattr(first, name) for name in SHARED}
    ckpt.write_tensors(Path(folder) / ANALYSIS, tensors, metadata=ckpt.made_from(fingerprint))


def load_analysis(folder: Path, model: Model) -> Analysis:
    """analysis.safetensors of a VQ-VAE, checked against the model it describes."""
    return load_level_analysis(folder, model)[None]


def load_level_analysis(folder: Path, model: Model) -> dict[str | None, Analysis]:
    """analysis.safetensors, each level's (top first; the key None for a VQ-VAE's one grid), checked against
    the model it describes."""
    path = Path(folder) / ANALYSIS
    tensors, metadata = ckpt.read_tensors(path)
    levels = model.level_names if isinstance(model, VQVAE2) else (None,)
    analyses = {level: _level_analysis(tensors, path, folder, LevelView(model, level)) for level in levels}
    remedy = f"Run `python -m vqvae analyse {folder}` again."
    ckpt.check_made_from(path, metadata, ckpt.model_fingerprint(model), remedy)
    return analyses


def _level_analysis(tensors: dict[str, torch.Tensor], path: Path, folder: Path, view: LevelView) -> Analysis:
    prefix = _prefix(view.level)
    start = f"{prefix}projection_"
    projections = {key.removeprefix(start): t for key, t in tensors.items() if key.startswith(start)}
    try:
        analysis = Analysis(
            projections=projections,
            **{name: tensors[f"{prefix}{name}"] for name in PER_GRID},
            **{name: tensors[name] for name in SHARED},
            background_code=int(tensors[f"{prefix}background_code"]),
        )
    except KeyError as error:
        raise CheckpointError(f"{path} lacks {error}; run `python -m vqvae analyse {folder}` again") from error
    k, (h, w) = view.num_embeddings, view.latent_shape
    size, channels = view.image_size, view.model.config.model.in_channels
    expected = {
        "usage": (k,),
        "images": (len(analysis.images), channels, size, size),
        "indices": (len(analysis.images), h, w),
        "nearest": (k, min(NEAREST, k - 1)),
        "tiles": (k,) + analysis.tiles.shape[1:],
    }
    which = "" if view.level is None else f"{view.level} "
    for name, shape in expected.items():
        if tuple(getattr(analysis, name).shape) != shape:
            raise CheckpointError(f"{path} does not match this VQ-VAE ({which}{name} is not {shape}); analyse it again")
    if "pca" not in projections or any(tuple(p.shape) != (k, 2) for p in projections.values()):
        raise CheckpointError(f"{path} has no valid {which}codebook projection; analyse it again")
    if int(analysis.indices.min()) < 0 or int(analysis.indices.max()) >= k or not 0 <= analysis.background_code < k:
        raise CheckpointError(f"{path} holds {which}codes outside [0, {k})")
    return analysis


def analyse_checkpoint(
    folder: str | Path, with_umap: bool = True, device: torch.device | str = "cpu"
) -> dict[str | None, Analysis]:
    """Compute and save a checkpoint folder's analysis on its data's held-out split: each level's, top first
    (the key None for a VQ-VAE's one grid). The model computes on `device`."""
    loaded = ckpt.load_checkpoint(folder, device)
    analyses = analyse_loaded(loaded, with_umap)
    save_level_analysis(Path(folder), analyses, fingerprint=ckpt.model_fingerprint(loaded.model))
    return analyses


def analyse_loaded(loaded: ckpt.Checkpoint, with_umap: bool = True) -> dict[str | None, Analysis]:
    """A loaded checkpoint's analysis (each level's) on its data's held-out split, computed and not saved."""
    if loaded.train_config is None:
        raise CheckpointError(f"{loaded.path} does not say which data it was trained on, so it has no held-out split")
    if loaded.data.speaker_names:
        raise CheckpointError(f"{loaded.path} is a speech model, which the app's image pages cannot show")
    model_config = loaded.config.model
    split = load_split(loaded.train_config.data, model_config.image_size, model_config.in_channels)
    return analyse_levels(loaded.model, split.test, with_umap=with_umap)
