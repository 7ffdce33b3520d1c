"""FashionMNIST for part 3 (given, not graded): part 1's data module, as 4-bit images in [0, 1].

The files are found (or downloaded) exactly as in part 1 (``../part1/data.py``: Debian's
``dataset-fashion-mnist``, ``$VAE_DATA_DIR``, or torchvision's download); this module only
converts them to part 3's convention (``models.py``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

PART1_DATA = Path(__file__).resolve().parent.parent / "part1" / "data.py"


def _part1_data():
    if not PART1_DATA.is_file():
        raise FileNotFoundError(f"part 3 reads FashionMNIST with part 1's data module; {PART1_DATA} is missing")
    spec = importlib.util.spec_from_file_location("part1_data", PART1_DATA)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_images(split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [N, 1, 28, 28] float in [0, 1] on the 16 levels, labels [N])`` of a split
    (``"train"``, ``"val"`` or ``"test"``; part 1's splits)."""
    data = _part1_data()
    images, labels = data.load_split("fashionmnist", split, limit=limit)
    return data.to_4bit(images).float().div(data.NUM_LEVELS - 1)[:, None], labels
