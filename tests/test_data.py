import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae.data import load_source, load_split
from vqvae.errors import DataError


def test_mnist5k_has_a_fixed_stratified_4500_500_split():
    first, second = load_split("mnist5k", 28, 1), load_split("mnist5k", 28, 1)
    assert first.train.images.shape == (4500, 1, 28, 28)
    assert first.test.images.shape == (500, 1, 28, 28)
    assert torch.equal(first.test.images, second.test.images)
    assert first.test.labels.bincount().tolist() == [50] * 10
    assert first.train.images.dtype == torch.float32
    assert 0.0 == float(first.train.images.min()) and float(first.train.images.max()) == 1.0
    train_rows = {tuple(x.flatten()[::7].tolist()) for x in first.train.images[:500]}
    assert not any(tuple(x.flatten()[::7].tolist()) in train_rows for x in first.test.images)


def test_digits_are_scaled_to_unit_range():
    split = load_split("digits", 8, 1)
    assert len(split.train) + len(split.test) == 1797
    assert float(split.train.images.max()) == 1.0


def test_images_are_fitted_to_the_model_size_and_channels():
    split = load_split("digits", 16, 3)
    assert split.train.images.shape[1:] == (3, 16, 16)


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_with_class_subfolders(tmp_path):
    for name, value in [("cats", 200), ("dogs", 50)]:
        for i in range(10):
            write_png(tmp_path / name / f"{i}.png", np.full((12, 12, 3), value, dtype=np.uint8))
    data = load_source(f"folder:{tmp_path}")
    assert data.class_names == ["cats", "dogs"]
    assert data.labels.tolist() == [0] * 10 + [1] * 10
    assert data.images.shape == (20, 3, 12, 12)
    assert torch.allclose(data.images[0], torch.full((3, 12, 12), 200 / 255))
    split = load_split(f"folder:{tmp_path}", 8, 1)
    assert len(split.test) == 2 and split.train.images.shape[1:] == (1, 8, 8)


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="no image files"):
        load_source(f"folder:{tmp_path}")
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="cannot read image"):
        load_source(f"folder:{tmp_path}")


def write_idx(path, array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


def test_idx_files_with_their_own_split(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(30) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    split = load_split(f"idx:{tmp_path}", 28, 1)
    assert split.train.images.shape == (30, 1, 28, 28) and len(split.test) == 10
    assert split.test.labels.tolist() == list(range(10))


def test_a_truncated_idx_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 4, 4)))
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-3])
    with pytest.raises(DataError, match="truncated"):
        load_source(f"idx:{tmp_path}")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match="not an IDX file"):
        load_source(f"idx:{tmp_path}")


def test_npz(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.full((20, 6, 6), 255, dtype=np.uint8), labels=np.arange(20) % 2)
    data = load_source(f"npz:{tmp_path / 'd.npz'}")
    assert data.images.shape == (20, 1, 6, 6) and float(data.images.min()) == 1.0
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((3, 3)))
    with pytest.raises(DataError, match="no 'images'"):
        load_source(f"npz:{tmp_path / 'bad.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read"):
        load_source(f"npz:{tmp_path / 'junk.npz'}")


@pytest.mark.parametrize("source", ["imagenet", "mnist5k:extra", "folder:", "ftp:somewhere"])
def test_unknown_sources_are_refused(source):
    with pytest.raises(DataError, match="unknown data source"):
        load_source(source)
