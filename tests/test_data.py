"""The instructor's data modules (part1/data.py, part2/data.py) and the grader's frugal use of them.

The grader loads FashionMNIST inside Gradescope's 768 MB container, so the IDX reader
fills its array directly, ``limit`` loads only the head of a split, and the grader
drops the modules' caches of whole splits once it has its subsets. These tests pin
that the frugal paths give exactly the images of the plain ones.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from autograder.checks import reference
from tests.support import SOLUTIONS


def _load(part: str) -> ModuleType:
    """``solutions/<part>/data.py`` as the grader imports it (siblings such as ``globals`` resolved)."""
    return reference.load(SOLUTIONS, part, "data")


@pytest.fixture(scope="module")
def data1() -> ModuleType:
    module = _load("part1")
    try:
        module.load_split("fashionmnist", "test", download=False, limit=1)
    except module.DatasetMissingError as exc:
        pytest.skip(f"FashionMNIST is not installed ({exc}); run ./setup.sh")
    return module


@pytest.fixture(scope="module")
def data2() -> ModuleType:
    return _load("part2")


def _write_idx(path: Path, array: np.ndarray, magic: int, truncate: int = 0) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    body = array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + body[:len(body) - truncate])
    return path


def test_part1_splits_are_fixed_disjoint_and_limited_to_their_head(data1: ModuleType):
    train, train_labels = data1.load_split("fashionmnist", "train", download=False)
    val, _ = data1.load_split("fashionmnist", "val", download=False)
    test, _ = data1.load_split("fashionmnist", "test", download=False)
    assert (train.shape, val.shape, test.shape) == ((54000, 28, 28), (6000, 28, 28), (10000, 28, 28))
    assert train.dtype == torch.uint8 and train_labels.dtype == torch.int64
    head, head_labels = data1.load_split("fashionmnist", "train", download=False, limit=300)
    assert torch.equal(head, train[:300]) and torch.equal(head_labels, train_labels[:300])
    assert torch.equal(data1.load_split("fashionmnist", "test", download=False, limit=7)[0], test[:7])
    again, _ = data1.load_split("fashionmnist", "train", download=False)
    assert torch.equal(again, train)  # the split does not depend on any global seed
    # No image of the validation split is a training image (compared by content).
    seen = {bytes(img.numpy()) for img in train[:5000]}
    assert not any(bytes(img.numpy()) in seen for img in val[:500] if img.any())


def test_part2_splits_are_limited_to_their_head_and_writable(data2: ModuleType):
    try:
        images, labels = data2.load_split_uint8("fashionmnist", "train")
    except data2.DatasetMissingError as exc:
        pytest.skip(f"FashionMNIST is not installed ({exc})")
    head, head_labels = data2.load_split_uint8("fashionmnist", "train", limit=50)
    assert images.shape == (55000, 1, 28, 28) and head.shape == (50, 1, 28, 28)
    assert np.array_equal(head, images[:50]) and np.array_equal(head_labels, labels[:50])
    assert head.flags.writeable and images.flags.writeable
    valid, _ = data2.load_split_uint8("fashionmnist", "valid", limit=5)
    assert valid.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("part", ["part1", "part2"])
def test_idx_reader_reads_exactly_and_refuses_truncated_files(tmp_path: Path, part: str):
    module = _load(part)
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(5, 28, 28)).astype(np.uint8)
    good = _write_idx(tmp_path / "good-idx3-ubyte.gz", images, 2051)
    short = _write_idx(tmp_path / "short-idx3-ubyte.gz", images, 2051, truncate=10)
    read = module._read_idx(good, 2051) if part == "part1" else module._read_idx(good)
    assert read.shape == images.shape and np.array_equal(read, images) and read.flags.writeable
    with pytest.raises(ValueError, match="truncated"):
        module._read_idx(short, 2051) if part == "part1" else module._read_idx(short)


def test_grader_subsets_drop_the_whole_split_caches(data1: ModuleType, data2: ModuleType):
    """The grader keeps only the subsets it needs (the container has 768 MB)."""
    from autograder.checks.part1 import vae_support as vs
    from autograder.checks.part2 import helpers as H

    train4, test4 = vs.smoke_images(data1, 64, 16)
    want = data1.to_4bit(data1.load_split("fashionmnist", "train", download=False)[0][:64]).to(torch.uint8)
    assert torch.equal(train4[:, 0], want) and test4.shape == (16, 1, 28, 28)
    vs.smoke_images(data1, 65, 16)
    assert data1._load_part.cache_info().currsize == 0
    head, labels = H.split_head(data2, "train", 32)
    full, full_labels = data2.load_split_uint8("fashionmnist", "train")
    assert torch.equal(head, torch.from_numpy(full[:32])) and torch.equal(labels, torch.from_numpy(full_labels[:32]))
    H.split_head(data2, "valid", 33)
    assert data2._fashionmnist_uint8.cache_info().currsize == 0
    full_x, full_y = data2.load_split("fashionmnist", "test")
    H._test_uint8.cache_clear()
    x, y = H.test_images(data2, 5000, 7)
    assert x.dtype == torch.float32 and torch.equal(x, full_x[5000:5007]) and torch.equal(y, full_y[5000:5007])
    assert data2._fashionmnist_uint8.cache_info().currsize == 0


def test_missing_dataset_is_one_actionable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = _load("part1")
    monkeypatch.setattr(module, "DEFAULT_DATA_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(module, "_candidate_dirs", lambda dataset, data_dir: [tmp_path / "nowhere"])
    with pytest.raises(module.DatasetMissingError) as info:
        module.load_split("fashionmnist", "train", data_dir=tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "\n" not in message and "Fix:" in message and "nowhere" in message
