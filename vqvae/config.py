"""Configuration dataclasses for every component, and the named presets.

Defaults follow van den Oord et al. 2017, "Neural Discrete Representation
Learning" (VQ-VAE); each default names its source. The config travels inside
every checkpoint folder, so a model is always rebuilt from its own settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

QUANTIZER_UPDATES = ("ema", "loss")
PRIORS = ("uniform", "unigram", "learned")  # the priors over code grids the app compares (section 3.3)
CODEBOOK_INITS = ("uniform", "samples", "kmeans")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class QuantizerConfig:
    """The codebook e in R^{K x D} and how it learns (section 3.1, appendix A.1)."""

    num_embeddings: int = 512  # K
    embedding_dim: int = 64  # D
    commitment_cost: float = 0.25  # beta, equation 3
    update: str = "ema"  # "ema" (appendix A.1) or "loss" (the codebook term of equation 3)
    decay: float = 0.99  # EMA decay, appendix A.1
    epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster sizes
    init: str = "kmeans"  # "uniform" (the paper), "samples" or "kmeans" of the first batch's z_e
    kmeans_iters: int = 10
    dead_code_steps: int = 0  # re-seed a code unused for this many steps; 0 turns restarts off
    dead_code_usage: float = 0.0  # ...or whose running usage is below this fraction of the mean code's
    cosine: bool = False  # l2-normalise z_e and the codes before the nearest-code search

    def __post_init__(self) -> None:
        _check(self.num_embeddings >= 2, "num_embeddings (K) must be at least 2")
        _check(self.num_embeddings <= 65536, "num_embeddings (K) must be at most 65536")
        _check(1 <= self.embedding_dim <= 4096, "embedding_dim (D) must be between 1 and 4096")
        _check(
            math.isfinite(self.commitment_cost) and self.commitment_cost >= 0,
            "commitment_cost (beta) must be a finite number >= 0",
        )
        _check(self.update in QUANTIZER_UPDATES, f"update must be one of {QUANTIZER_UPDATES}")
        _check(0.0 <= self.decay < 1.0, "decay must satisfy 0 <= decay < 1")
        _check(0.0 < self.epsilon < 1.0, "epsilon must satisfy 0 < epsilon < 1")
        _check(self.init in CODEBOOK_INITS, f"init must be one of {CODEBOOK_INITS}")
        _check(self.kmeans_iters >= 0, "kmeans_iters must be >= 0")
        _check(self.dead_code_steps >= 0, "dead_code_steps must be >= 0 (0 turns restarts off)")
        _check(0.0 <= self.dead_code_usage < 1.0, "dead_code_usage must satisfy 0 <= fraction < 1")


@dataclass
class ModelConfig:
    """Encoder and decoder (section 4.1): stride-2 4x4 convs, a 3x3 conv, residual blocks."""

    in_channels: int = 1
    image_size: int = 28
    downsample: int = 4  # 2, 4 or 8: the latent grid is image_size / downsample on a side
    hidden_channels: int = 128
    residual_channels: int = 32
    num_residual_blocks: int = 2  # the paper uses 2

    def __post_init__(self) -> None:
        _check(self.in_channels in (1, 3), "in_channels must be 1 (grey) or 3 (colour)")
        _check(self.downsample in (2, 4, 8), "downsample must be 2, 4 or 8")
        _check(
            self.image_size >= self.downsample and self.image_size % self.downsample == 0,
            f"image_size {self.image_size} must be a multiple of downsample {self.downsample}",
        )
        _check(self.image_size <= 512, "image_size must be at most 512")
        _check(1 <= self.hidden_channels <= 1024, "hidden_channels must be between 1 and 1024")
        _check(1 <= self.residual_channels <= 1024, "residual_channels must be between 1 and 1024")
        _check(0 <= self.num_residual_blocks <= 16, "num_residual_blocks must be between 0 and 16")

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample


@dataclass
class VQVAEConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.model.latent_size, self.model.latent_size)


LEVEL_NAMES = {
    2: ("top", "bottom"),
    3: ("top", "middle", "bottom"),
    4: ("top", "upper", "lower", "bottom"),
}  # the levels of a hierarchy, top first, as config.json, the files and the app name them


def every_level_name() -> list[str]:
    """Every name a level of some hierarchy has, each once."""
    return list(dict.fromkeys(name for names in LEVEL_NAMES.values() for name in names))


@dataclass
class VQVAE2Config:
    """VQ-VAE-2 (Razavi et al. 2019, section 3.1): `levels` grids of codes, the bottom one at
    image_size / downsample, each level above it half the side of the one below. Every level has
    a codebook of its own, with the quantizer's settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    levels: int = 2  # the paper's two (three for its 1024 x 1024 faces)

    def __post_init__(self) -> None:
        _check(self.levels in LEVEL_NAMES, f"levels must be one of {sorted(LEVEL_NAMES)}")
        halvings = 2 ** (self.levels - 1)
        _check(
            self.model.latent_size % halvings == 0,
            f"the bottom grid's side {self.model.latent_size} must be a multiple of {halvings}, "
            f"so that each of the {self.levels} levels halves it",
        )

    @property
    def level_names(self) -> tuple[str, ...]:
        """top first: ("top", "bottom") for two levels."""
        return LEVEL_NAMES[self.levels]

    @property
    def latent_shapes(self) -> dict[str, tuple[int, int]]:
        """Each level's grid (h, w), top first."""
        bottom = self.model.latent_size
        sides = [bottom // 2 ** (self.levels - 1 - i) for i in range(self.levels)]
        return {name: (side, side) for name, side in zip(self.level_names, sides)}


SPEECH_FRAMES = 128  # frames of log |STFT| in a speech clip (speech/features.py: 8 ms each, 1.016 s)


@dataclass
class SpeechModelConfig:
    """The speech family (van den Oord et al. 2017, section 4.3): a 1-D encoder over SPEECH_FRAMES frames of
    log |STFT| (speech/features.py) and a decoder told the speaker."""

    downsample: int = 4  # spectrogram frames per code: 4 frames of 8 ms, a code every 32 ms
    hidden_channels: int = 256
    residual_channels: int = 128
    num_residual_blocks: int = 2
    num_speakers: int = 40  # the decoder's speaker embeddings: the training data's speakers
    speaker_dim: int = 64

    def __post_init__(self) -> None:
        _check(self.downsample in (1, 2, 4, 8, 16), "downsample must be 1, 2, 4, 8 or 16 frames per code")
        _check(1 <= self.hidden_channels <= 2048, "hidden_channels must be between 1 and 2048")
        _check(1 <= self.residual_channels <= 2048, "residual_channels must be between 1 and 2048")
        _check(0 <= self.num_residual_blocks <= 16, "num_residual_blocks must be between 0 and 16")
        _check(1 <= self.num_speakers <= 100_000, "num_speakers must be between 1 and 100000")
        _check(1 <= self.speaker_dim <= 1024, "speaker_dim must be between 1 and 1024")

    @property
    def codes_per_clip(self) -> int:
        return SPEECH_FRAMES // self.downsample


@dataclass
class SpeechConfig:
    model: SpeechModelConfig = field(default_factory=SpeechModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """The codes of a clip as a grid of one row (1, t): the shape the priors and the app read."""
        return (1, self.model.codes_per_clip)


@dataclass
class PriorConfig:
    """The gated PixelCNN prior over code grids (section 3.3; van den Oord et al. 2016, section 2).

    The defaults suit a 7x7 grid of K = 512 codes (MNIST at downsample 4) on a small CPU:
    8 layers of 3x3 stacks see the whole grid, and 64 grids sample in a fraction of a second.
    """

    num_embeddings: int  # K, the VQ-VAE's codebook size
    latent_height: int  # h of the code grid
    latent_width: int  # w of the code grid
    num_classes: int = 0  # 0: unconditional; else conditioned on labels 0..num_classes-1
    condition_channels: int = 0  # M of a conditioning map (another level's codes, earlier frames'); 0: none
    condition_layers: int = 0  # 3x3 convolutions over the map before it reaches the gated layers (0: none)
    embedding_dim: int = 64  # size of each code's learned embedding
    hidden_channels: int = 64  # C of both stacks
    num_layers: int = 8  # gated layers; each widens the view by kernel_size // 2
    kernel_size: int = 3  # odd: the vertical stack is k wide, the horizontal one k // 2 + 1 long
    dropout: float = 0.0  # on each gated layer's output
    attention_heads: int = 0  # heads of a causal self-attention block before the head (0: none; Razavi et al. 2019)

    def __post_init__(self) -> None:
        _check(2 <= self.num_embeddings <= 65536, "num_embeddings (K) must be between 2 and 65536")
        _check(1 <= self.latent_height <= 256, "latent_height must be between 1 and 256")
        _check(1 <= self.latent_width <= 256, "latent_width must be between 1 and 256")
        _check(0 <= self.num_classes <= 100_000, "num_classes must be between 0 and 100,000 (0: unconditional)")
        _check(0 <= self.condition_channels <= 4096, "condition_channels must be between 0 and 4096 (0: no map)")
        _check(0 <= self.condition_layers <= 16, "condition_layers must be between 0 and 16")
        _check(
            self.condition_layers == 0 or self.condition_channels > 0,
            "condition_layers needs a conditioning map (condition_channels > 0)",
        )
        _check(1 <= self.embedding_dim <= 4096, "embedding_dim must be between 1 and 4096")
        _check(1 <= self.hidden_channels <= 1024, "hidden_channels must be between 1 and 1024")
        _check(1 <= self.num_layers <= 64, "num_layers must be between 1 and 64")
        _check(
            3 <= self.kernel_size <= 15 and self.kernel_size % 2 == 1,
            "kernel_size must be odd and between 3 and 15",
        )
        _check(0.0 <= self.dropout < 1.0, "dropout must satisfy 0 <= dropout < 1")
        _check(0 <= self.attention_heads <= 64, "attention_heads must be between 0 and 64 (0: no attention)")
        _check(
            self.attention_heads == 0 or self.hidden_channels % self.attention_heads == 0,
            "hidden_channels must be a multiple of attention_heads",
        )

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.latent_height, self.latent_width)


@dataclass
class TrainConfig:
    """How one training run goes. `steps` and `minutes` may both be set: the first to come ends it."""

    data: str = "mnist5k"
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 128
    learning_rate: float = 2e-3
    lr_decay: bool = True  # cosine decay to 5% of the rate over the run
    augment_shift: int = 0  # translate each training image by up to this many pixels (0: off)
    seed: int = 0
    log_every: int = 25
    save_every: int = 500

    def __post_init__(self) -> None:
        _check(self.steps is not None or self.minutes is not None, "set steps or minutes")
        if self.steps is not None:
            _check(1 <= self.steps <= 10_000_000, "steps must be between 1 and 10,000,000")
        if self.minutes is not None:
            _check(
                math.isfinite(self.minutes) and 0 < self.minutes <= 7 * 24 * 60,
                "minutes must be > 0 and at most a week",
            )
        _check(1 <= self.batch_size <= 65536, "batch_size must be between 1 and 65536")
        _check(
            math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1,
            "learning_rate must be a finite number in (0, 1]",
        )
        _check(0 <= self.augment_shift <= 16, "augment_shift must be between 0 and 16 pixels")
        _check(0 <= self.seed < 2**31, "seed must be between 0 and 2^31 - 1")
        _check(self.log_every >= 1, "log_every must be >= 1")
        _check(self.save_every >= 1, "save_every must be >= 1")


@dataclass
class DataFacts:
    """What a VQ-VAE's training recorded about its data, beside the settings (config.json's "extra")."""

    data_variance: float | None = None  # the training images' pixel variance, which scales equation 3's first term
    class_names: list[str] = field(default_factory=list)  # empty: unlabelled data
    train_images: int = 0  # images (or utterances) in the train split (0: not recorded)
    speaker_names: list[str] = field(default_factory=list)  # a speech model's speakers, by embedding row

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)


def data_facts_from_dict(data: Any) -> DataFacts:
    """Rebuild DataFacts from config.json's "extra"; a value of the wrong type raises ValueError naming it."""
    if not isinstance(data, dict):
        raise ValueError(f"extra must be an object, not {type(data).__name__}")
    for key in ("class_names", "speaker_names"):
        names = data.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(f"extra.{key} must be a list of strings")
    for key in ("data_variance", "train_images"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"extra.{key} must be a number, not {value!r}")
    variance = data.get("data_variance")
    return DataFacts(
        data_variance=None if variance is None else float(variance),
        class_names=list(data.get("class_names") or []),
        train_images=int(data.get("train_images") or 0),
        speaker_names=list(data.get("speaker_names") or []),
    )


# How a prior and the sample-scoring classifier train, from the command line and the app alike
# where and how a job computes (runtime.py): never saved, so a checkpoint is device-free
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

PRIOR_MINUTES = 5.0  # unless steps or minutes are given
PRIOR_BATCH_SIZE = 128  # code grids per step
PRIOR_LEARNING_RATE = 1e-3
CLASSIFIER_STEPS = 1500  # batches of 128 images, shifted by up to 2 pixels
TRAIN_NLL_GRIDS = 10_000  # training grids the learned prior's training NLL is measured on, evenly spaced


def prior_training(data: str, seed: int = 0, **given: Any) -> TrainConfig:
    """How a prior fits the code grids of a VQ-VAE trained on `data`: the defaults above, with the
    settings given (TrainConfig fields; steps and minutes replace PRIOR_MINUTES) on top."""
    length = {"minutes": PRIOR_MINUTES} if given.get("steps") is None and given.get("minutes") is None else {}
    defaults = {"batch_size": PRIOR_BATCH_SIZE, "learning_rate": PRIOR_LEARNING_RATE}
    return TrainConfig(data=data, seed=seed, **(defaults | length | given))


def classifier_training(steps: int = CLASSIFIER_STEPS, seed: int = 0) -> TrainConfig:
    """How the sample-scoring classifier trains on the train split (its images come with the call)."""
    return TrainConfig(data="", steps=steps, batch_size=128, learning_rate=1e-3, seed=seed, save_every=steps)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _checked(cls: type, data: Any, where: str) -> dict[str, Any]:
    """The fields of `cls` from a JSON object, each of its declared type; else ValueError naming it.

    Missing fields with a default take it, so a config saved before a field existed still loads.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where} has unknown settings {unknown}")
    for name, spec in fields.items():
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}.{name} is missing")
            continue
        value, kinds = data[name], str(spec.type).replace(" ", "").split("|")
        allowed = tuple(t for kind in kinds if kind != "None" for t in _KINDS[kind])
        if value is None and "None" in kinds:
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            raise ValueError(f"{where}.{name} must be {' or '.join(kinds)}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}.{name} must be a finite number, not {value!r}")
    return dict(data)


def vqvae_config_from_dict(data: dict[str, Any]) -> VQVAEConfig:
    """Rebuild a VQVAEConfig; unknown, missing or mistyped keys and bad values raise ValueError."""
    if not isinstance(data, dict) or set(data) != {"model", "quantizer"}:
        raise ValueError("vqvae must be an object of exactly two sections, model and quantizer")
    return VQVAEConfig(
        model=ModelConfig(**_checked(ModelConfig, data["model"], "vqvae.model")),
        quantizer=QuantizerConfig(**_checked(QuantizerConfig, data["quantizer"], "vqvae.quantizer")),
    )


def vqvae2_config_from_dict(data: dict[str, Any]) -> VQVAE2Config:
    """Rebuild a VQVAE2Config; unknown, missing or mistyped keys and bad values raise ValueError."""
    if not isinstance(data, dict) or set(data) != {"model", "quantizer", "levels"}:
        raise ValueError("vqvae2 must be an object of exactly three sections, model, quantizer and levels")
    if isinstance(data["levels"], bool) or not isinstance(data["levels"], int):
        raise ValueError(f"vqvae2.levels must be int, not {data['levels']!r}")
    return VQVAE2Config(
        model=ModelConfig(**_checked(ModelConfig, data["model"], "vqvae2.model")),
        quantizer=QuantizerConfig(**_checked(QuantizerConfig, data["quantizer"], "vqvae2.quantizer")),
        levels=data["levels"],
    )


def speech_config_from_dict(data: dict[str, Any]) -> SpeechConfig:
    """Rebuild a SpeechConfig; unknown, missing or mistyped keys and bad values raise ValueError."""
    if not isinstance(data, dict) or set(data) != {"model", "quantizer"}:
        raise ValueError("speech must be an object of exactly two sections, model and quantizer")
    return SpeechConfig(
        model=SpeechModelConfig(**_checked(SpeechModelConfig, data["model"], "speech.model")),
        quantizer=QuantizerConfig(**_checked(QuantizerConfig, data["quantizer"], "speech.quantizer")),
    )


def prior_config_from_dict(data: dict[str, Any]) -> PriorConfig:
    """Rebuild a PriorConfig; unknown, missing or mistyped keys and bad values raise ValueError."""
    return PriorConfig(**_checked(PriorConfig, data, "prior"))


def train_config_from_dict(data: dict[str, Any], where: str = "train") -> TrainConfig:
    return TrainConfig(**_checked(TrainConfig, data, where))


@dataclass(frozen=True)
class Preset:
    vqvae: VQVAEConfig | VQVAE2Config  # the model family follows from its type
    train: TrainConfig


def _mnist() -> Preset:
    return Preset(
        vqvae=VQVAEConfig(
            model=ModelConfig(in_channels=1, image_size=28, downsample=4, hidden_channels=64),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
        ),
        train=TrainConfig(data="mnist5k", minutes=2, batch_size=64, learning_rate=3e-3, augment_shift=2),
    )


def _digits_tiny() -> Preset:
    """A few channels on sklearn's 8x8 digits: the size the test suite trains at."""
    return Preset(
        vqvae=VQVAEConfig(
            model=ModelConfig(
                in_channels=1,
                image_size=8,
                downsample=2,
                hidden_channels=16,
                residual_channels=8,
                num_residual_blocks=1,
            ),
            quantizer=QuantizerConfig(num_embeddings=32, embedding_dim=8, dead_code_steps=10),
        ),
        train=TrainConfig(data="digits", steps=50, batch_size=64, log_every=5, save_every=25),
    )


def _fashion() -> Preset:
    """Fashion-MNIST's 60,000 training images: MNIST's network, without shifts (60,000 images need none)."""
    return Preset(
        vqvae=VQVAEConfig(
            model=ModelConfig(in_channels=1, image_size=28, downsample=4, hidden_channels=64),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
        ),
        train=TrainConfig(data="fashion-mnist", minutes=2, batch_size=64, learning_rate=3e-3),
    )


def _cifar10() -> Preset:
    """CIFAR-10's 32x32 colour images -> an 8x8 grid: MNIST's codebook and schedule, a wider network, no
    shifts (50,000 images need none). Its archive's path is relative: to the working folder, or in the app
    to its data folder."""
    return Preset(
        vqvae=VQVAEConfig(
            model=ModelConfig(in_channels=3, image_size=32, downsample=4, hidden_channels=128),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
        ),
        train=TrainConfig(
            data="cifar10:cifar-10-binary.tar.gz", minutes=2, batch_size=64, learning_rate=3e-3, augment_shift=0
        ),
    )


def _emoji() -> Preset:
    """Noto's colour emoji at 32x32 -> an 8x8 grid: the paper's 128-channel network, shifted by up to 2
    pixels (3,277 training pictures are few). At 1,500 steps, a rate of 1e-3 reaches 19.4 dB held-out where
    3e-3 reaches 16.6."""
    return Preset(
        vqvae=VQVAEConfig(
            model=ModelConfig(in_channels=3, image_size=32, downsample=4, hidden_channels=128),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
        ),
        train=TrainConfig(data="emoji", minutes=2, batch_size=64, learning_rate=1e-3, augment_shift=2),
    )


def _emoji64_2level() -> Preset:
    """VQ-VAE-2 on Noto's colour emoji at 64x64: a 16x16 bottom grid for detail under an 8x8 top grid for
    the whole picture, the paper's two levels of K = 512, the emoji preset's network and rate."""
    return Preset(
        vqvae=VQVAE2Config(
            model=ModelConfig(in_channels=3, image_size=64, downsample=4, hidden_channels=128),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
            levels=2,
        ),
        train=TrainConfig(data="emoji", minutes=2, batch_size=64, learning_rate=3e-4, augment_shift=4),
    )


def _emoji64() -> Preset:
    """One level of codes on emoji at 64x64, the size of emoji64-2level's bottom grid (16x16) with its K, network,
    rate and shifts: what the hierarchy is measured against."""
    two = _emoji64_2level()
    return Preset(vqvae=VQVAEConfig(two.vqvae.model, two.vqvae.quantizer), train=two.train)


def _fashion32_2level() -> Preset:
    """VQ-VAE-2 on Fashion-MNIST enlarged to 32x32: an 8x8 bottom grid under a 4x4 top grid."""
    return Preset(
        vqvae=VQVAE2Config(
            model=ModelConfig(in_channels=1, image_size=32, downsample=4, hidden_channels=64),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
            levels=2,
        ),
        train=TrainConfig(data="fashion-mnist", minutes=2, batch_size=64, learning_rate=3e-3),
    )


def _digits_tiny_2level() -> Preset:
    """Two levels of a few channels on sklearn's 8x8 digits (4x4 under 2x2): the test suite's hierarchy."""
    tiny = _digits_tiny()
    return Preset(vqvae=VQVAE2Config(tiny.vqvae.model, tiny.vqvae.quantizer, levels=2), train=tiny.train)


def _speech_digits() -> Preset:
    """Spoken digits from espeak-ng's voices (speech/synth.py): a code every 64 ms (8 frames of 8 ms), K = 512."""
    return Preset(
        vqvae=SpeechConfig(
            model=SpeechModelConfig(downsample=8, num_speakers=40),
            quantizer=QuantizerConfig(num_embeddings=512, embedding_dim=64, dead_code_steps=50, dead_code_usage=0.1),
        ),
        train=TrainConfig(data="speech-digits", minutes=10, batch_size=32, learning_rate=1e-3, augment_shift=0),
    )


PRESETS = {
    "mnist": _mnist,
    "fashion": _fashion,
    "emoji": _emoji,
    "cifar10": _cifar10,
    "emoji64": _emoji64,
    "emoji64-2level": _emoji64_2level,
    "fashion32-2level": _fashion32_2level,
    "digits-tiny": _digits_tiny,
    "digits-tiny-2level": _digits_tiny_2level,
    "speech-digits": _speech_digits,
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


def preset_with(name: str, model: dict[str, Any], quantizer: dict[str, Any], train: dict[str, Any]) -> Preset:
    """A named preset with settings on top, the ones given as None left out. The training length is one
    setting: steps or minutes given (either) replace the preset's steps and minutes (both)."""

    def given(settings: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in settings.items() if value is not None}

    chosen = preset(name)
    length = {"steps": train.get("steps"), "minutes": train.get("minutes")}
    training = given(train) | (length if any(v is not None for v in length.values()) else {})
    return Preset(
        vqvae=dataclasses.replace(
            chosen.vqvae,
            model=dataclasses.replace(chosen.vqvae.model, **given(model)),
            quantizer=dataclasses.replace(chosen.vqvae.quantizer, **given(quantizer)),
        ),
        train=dataclasses.replace(chosen.train, **training),
    )
