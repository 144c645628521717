"""One prior over every grid of a model's codes, as the app compares them (van den Oord et al. 2017, section
3.3): a VQ-VAE's one prior over its grid, or a VQ-VAE-2's one per level (Razavi et al. 2019). Learned priors
of a hierarchy are drawn top first, each level below given the ones drawn above it (ancestral.py); the
uniform and unigram priors draw every level on its own. Codes are dicts of level -> (n, h, w) int64
(families.Codes), the key None for a VQ-VAE's one grid.
"""

from __future__ import annotations

import torch

from .ancestral import condition_map, prior_labels
from .families import Codes, Model, code_shapes
from .hierarchy import VQVAE2
from .prior import GatedPixelCNN, Prior


class CodesPrior:
    def __init__(self, model: Model, priors: dict[str | None, Prior]):
        """priors: one per level of the model (its one grid: the key None), all of one kind."""
        self.model, self.priors = model, priors
        self.shapes = code_shapes(model)
        if list(priors) != list(self.shapes):
            raise ValueError(f"give a prior for every level ({list(self.shapes)}), not for {list(priors)}")

    @property
    def num_classes(self) -> int:
        """How many classes it is conditioned on (0: none), as its learned priors are."""
        return max((p.config.num_classes for p in self.priors.values() if isinstance(p, GatedPixelCNN)), default=0)

    @property
    def latents(self) -> int:
        """Codes in one sample, every level's together."""
        return sum(h * w for h, w in self.shapes.values())

    def sample(
        self, n: int, labels: torch.Tensor | None = None, temperature: float = 1.0, seed: int | None = None
    ) -> Codes:
        return self.sample_scored(n, labels, temperature, seed)[0]

    def sample_scored(
        self, n: int, labels: torch.Tensor | None = None, temperature: float = 1.0, seed: int | None = None
    ) -> tuple[Codes, torch.Tensor]:
        """n samples, top first (level i drawn with seed + i), and log p of each (n,) in nats under this prior at
        temperature 1 (for a learned prior, read off as it draws; else computed)."""
        codes: Codes = {}
        total = torch.zeros(n)
        for i, (level, prior) in enumerate(self.priors.items()):
            level_seed = None if seed is None else seed + i
            if isinstance(prior, GatedPixelCNN):
                condition = self._condition(codes, level)
                grids, log_p = prior.sample_scored(
                    n, prior_labels(prior, labels), temperature, None, level_seed, None, condition
                )
            else:
                grids = prior.sample(n, temperature=temperature, seed=level_seed)
                log_p = prior.log_prob(grids)
            codes[level] = grids
            total = total + log_p.cpu()
        return codes, total

    def log_prob(self, codes: Codes, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p of each sample (n,) in nats, summed over the levels (each below the top given those above)."""
        total = 0
        for level, prior in self.priors.items():
            if isinstance(prior, GatedPixelCNN):
                total = total + prior.log_prob(codes[level], prior_labels(prior, labels), self._condition(codes, level))
            else:
                total = total + prior.log_prob(codes[level])
        return total

    def logits(self, level: str | None, codes: Codes, labels: torch.Tensor | None = None) -> torch.Tensor:
        """A learned level's logits (n, K, h, w) of p(z_t | z_<t, levels above, label) along `codes`."""
        prior = self.priors[level]
        if not isinstance(prior, GatedPixelCNN):
            raise ValueError("only a learned prior gives logits position by position")
        return prior(codes[level], prior_labels(prior, labels), self._condition(codes, level))

    def _condition(self, codes: Codes, level: str | None) -> torch.Tensor | None:
        """The map of the levels above `level`, from `codes` (which must hold them); None for the top or one grid."""
        if not isinstance(self.model, VQVAE2):
            return None
        above = list(self.model.level_names)[: self.model.level_names.index(level)]
        return condition_map(self.model, [codes[name] for name in above], level)
