"""Data loading for the adversarial-attack assignment (instructor-owned, not graded).

Images are float tensors in [0, 1] of shape ``[N, C, H, W]`` (normalisation happens
inside the models), labels are ``long`` tensors of shape ``[N]``.

* FashionMNIST (default, works offline): read from the IDX files shipped by Debian's
  ``dataset-fashion-mnist`` package in ``/usr/share/datasets/fashion-mnist``, or from
  ``<data_dir>`` / ``<data_dir>/FashionMNIST/raw`` (torchvision's layout), gzipped or not.
* CIFAR-10: torchvision's ``CIFAR10`` under ``<data_dir>`` (downloaded when possible).

Splits are deterministic: "valid" is a fixed set of 5,000 training images (chosen by a
seeded NumPy permutation, stable across versions), "train" is the rest, "test" is the
official test set. Importing this module has no side effects.
"""
from __future__ import annotations

import functools
import gzip
import os
import socket
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from globals import CIFAR10, CIFAR10_LABELS, FASHIONMNIST, FASHIONMNIST_LABELS

DEBIAN_FASHIONMNIST_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_DATA_DIR = "./data"
VALID_SIZE = 5000
SPLIT_SEED = 0
SPLITS = ("train", "valid", "test")
CLASS_NAMES = {FASHIONMNIST: FASHIONMNIST_LABELS, CIFAR10: CIFAR10_LABELS}


class DatasetMissingError(FileNotFoundError):
    """The requested dataset is not on disk and cannot be fetched; the message is one line."""


# ---------------------------------------------------------------------------- FashionMNIST
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): big-endian magic, dims, then uint8 data.

    Read straight into a writable array (no intermediate bytes object, which would double
    the peak memory: the grader loads these files inside a 768 MB container).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        magic = int.from_bytes(f.read(4), "big")
        if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
            raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
        ndim = magic & 0xFF
        header = f.read(4 * ndim)
        dims = [int.from_bytes(header[4 * i: 4 * i + 4], "big") for i in range(ndim)]
        data = np.empty(dims, dtype=np.uint8)
        if f.readinto(memoryview(data).cast("B")) != data.size:
            raise ValueError(f"{path} is truncated: expected {data.size} bytes of data after the header")
    return data


def _find_idx(data_dir: str | None, stem: str) -> Path | None:
    """First existing ``stem`` or ``stem.gz`` among the places FashionMNIST may live."""
    roots = [data_dir] if data_dir else [DEBIAN_FASHIONMNIST_DIR, DEFAULT_DATA_DIR]
    for root in roots:
        for folder in (Path(root), Path(root) / "FashionMNIST" / "raw", Path(root) / "fashion-mnist"):
            for name in (stem + ".gz", stem):
                if (folder / name).is_file():
                    return folder / name
    return None


@functools.lru_cache(maxsize=4)
def _fashionmnist_uint8(official_split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Official FashionMNIST split as (uint8 images [N,28,28], int64 labels [N]); cached."""
    image_stem, label_stem = _FMNIST_FILES[official_split]
    image_path, label_path = _find_idx(data_dir, image_stem), _find_idx(data_dir, label_stem)
    if image_path is None or label_path is None:
        where = data_dir or f"{DEBIAN_FASHIONMNIST_DIR} or {DEFAULT_DATA_DIR}"
        raise DatasetMissingError(
            f"FashionMNIST not found in {where}: install Debian's dataset-fashion-mnist package "
            f"or put {image_stem}.gz and {label_stem}.gz there (or pass --data_dir)"
        )
    images, labels = _read_idx(image_path), _read_idx(label_path).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_path} and {label_path} hold different numbers of examples")
    return images, labels


# ---------------------------------------------------------------------------- CIFAR-10
@functools.lru_cache(maxsize=4)
def _cifar10_uint8(official_split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Official CIFAR-10 split as (uint8 images [N,32,32,3], int64 labels [N]); cached."""
    import torchvision  # deferred: only CIFAR-10 needs it

    root = data_dir or DEFAULT_DATA_DIR
    train = official_split == "train"
    try:
        dataset = torchvision.datasets.CIFAR10(root=root, train=train, download=False)
    except RuntimeError:  # not on disk (or corrupt): try to download it once
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)  # fail fast on machines without internet
        try:
            dataset = torchvision.datasets.CIFAR10(root=root, train=train, download=True)
        except Exception as error:  # noqa: BLE001 - any network/IO failure means "missing"
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DatasetMissingError(
                f"CIFAR-10 not found in {root} and could not be downloaded ({reason}): "
                f"put cifar-10-batches-py there, pass --data_dir, or use --dataset {FASHIONMNIST}"
            ) from None
        finally:
            socket.setdefaulttimeout(previous)
    return np.asarray(dataset.data, dtype=np.uint8), np.asarray(dataset.targets, dtype=np.int64)


# ---------------------------------------------------------------------------- splits
def _split_indices(n_official_train: int, split: str) -> np.ndarray:
    """Indices into the official training set for our "train" / "valid" split."""
    order = np.random.RandomState(SPLIT_SEED).permutation(n_official_train)
    return np.sort(order[:VALID_SIZE] if split == "valid" else order[VALID_SIZE:])


def load_split_uint8(dataset: str, split: str, data_dir: str | None = None,
                     limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split as (uint8 images [N, C, H, W], int64 labels [N]) - the memory-light form.

    ``limit``: only the split's first ``limit`` images (same order as without it).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    official = "test" if split == "test" else "train"
    if dataset == FASHIONMNIST:
        images, labels = _fashionmnist_uint8(official, data_dir)
        images = images[:, None]  # [N, 1, 28, 28]
    elif dataset == CIFAR10:
        images, labels = _cifar10_uint8(official, data_dir)
        images = images.transpose(0, 3, 1, 2)  # [N, 3, 32, 32]
    else:
        raise ValueError(f"unknown dataset {dataset!r}: expected {FASHIONMNIST!r} or {CIFAR10!r}")
    if split != "test":
        index = _split_indices(len(labels), split)[:limit]
        images, labels = images[index], labels[index]
    else:
        images, labels = images[:limit], labels[:limit]
    # Copies, so that callers may modify what they get without touching the cache.
    return np.array(images, copy=True, order="C"), np.array(labels, copy=True)


def load_split(dataset: str, split: str, data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (float32 images [N, C, H, W] in [0, 1], long labels [N]); fresh tensors each call."""
    images, labels = load_split_uint8(dataset, split, data_dir)
    return torch.from_numpy(images).float().div_(255.0), torch.from_numpy(labels).clone()


# ---------------------------------------------------------------------------- loaders
class ImageDataset(Dataset):
    """uint8 images kept in memory, returned as float [C, H, W] in [0, 1] with a long label.

    With ``augment``, each returned image is randomly flipped left-right and shifted by up
    to ``pad`` pixels (zero padding then a random crop), using torch's global RNG.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False, pad: int = 2) -> None:
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels)
        self.augment, self.pad = augment, pad

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div_(255.0)
        if self.augment:
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
            p = self.pad
            h, w = image.shape[-2:]
            padded = torch.nn.functional.pad(image, (p, p, p, p))
            top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
            image = padded[:, top:top + h, left:left + w]
        return image, self.labels[index]


def get_loaders(
    dataset: str = FASHIONMNIST,
    batch_size: int = 128,
    data_dir: str | None = None,
    augmentations: bool = False,
    subset: int | None = None,
    test_batch_size: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader, DataLoader, dict]:
    """(trainloader, validloader, testloader, attributes) for ``dataset``.

    ``subset`` keeps the first N training examples, ``test_subset`` the first N test
    examples (quick runs). The training loader shuffles with a generator seeded by
    ``seed``; the others keep a fixed order. ``attributes`` holds ``class_names``,
    ``N_train``, ``N_valid``, ``N_test``. Raises :class:`DatasetMissingError` when the data is absent.
    """
    pad = 4 if dataset == CIFAR10 else 2
    parts = {}
    for split in SPLITS:
        images, labels = load_split_uint8(dataset, split, data_dir)
        limit = subset if split == "train" else test_subset if split == "test" else None
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        parts[split] = ImageDataset(images, labels, augment=augmentations and split == "train", pad=pad)
    generator = torch.Generator().manual_seed(seed)
    trainloader = DataLoader(parts["train"], batch_size=batch_size, shuffle=True, generator=generator)
    validloader = DataLoader(parts["valid"], batch_size=batch_size, shuffle=False)
    testloader = DataLoader(parts["test"], batch_size=test_batch_size or batch_size, shuffle=False)
    attributes = {
        "class_names": CLASS_NAMES[dataset],
        "N_train": len(parts["train"]),
        "N_valid": len(parts["valid"]),
        "N_test": len(parts["test"]),
    }
    return trainloader, validloader, testloader, attributes
