"""Classifiers for the adversarial-attack assignment (instructor-owned, not graded).

Every model takes images with pixel values in [0, 1] and normalises them inside its
first layer (:class:`Normalize`), as torchattacks and RobustBench do. The valid data
range is therefore always [0, 1] and attack budgets (epsilon, alpha) are in pixel
units whatever the dataset.

* :class:`SmallNet` - FashionMNIST, input ``[B, 1, 28, 28]``, 10 classes; about
  24k parameters, a few seconds per epoch on a CPU (the grader's default model).
* :class:`ResNet18` - CIFAR-10, input ``[B, 3, 32, 32]``, 10 classes; the usual
  CIFAR variant (3x3 stem, no max-pool). Parameter names follow torchvision's
  ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``) so that common
  CIFAR-10 checkpoints load into it.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from globals import CIFAR10, FASHIONMNIST

# Per-channel statistics of the training sets, in [0, 1] pixel units.
FASHIONMNIST_MEAN, FASHIONMNIST_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean/std are buffers so they follow ``.to(device)``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallNet(nn.Module):
    """Two 4x4 stride-2 conv layers (16, 32 channels) with ReLU, then a linear layer.

    Input: float ``[B, 1, 28, 28]`` in [0, 1]. Output: logits ``[B, 10]``. About 24k
    parameters. Strided convolutions instead of conv + max-pool make it about three
    times faster on a CPU for the same accuracy. No batch-norm or dropout, so train
    and eval mode compute the same function (attacks on it are deterministic whatever
    mode the model is in).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(FASHIONMNIST_MEAN, FASHIONMNIST_STD)
        self.conv1 = nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = F.relu(self.conv1(x))  # [B, 16, 14, 14]
        x = F.relu(self.conv2(x))  # [B, 32, 7, 7]
        return self.fc(x.flatten(1))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18: input float ``[B, 3, 32, 32]`` in [0, 1], output logits ``[B, 10]``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, in_planes = [], 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def load_pretrained(model: nn.Module, path: str) -> nn.Module:
    """Load a state dict saved with ``torch.save`` into ``model`` (tensors only: ``weights_only=True``).

    Accepts a bare state dict or one wrapped as ``{"state_dict": ...}`` / ``{"model": ...}``,
    and a checkpoint without the normalisation buffers (they keep this module's values).
    Raises ``FileNotFoundError`` with a one-line message when ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained weights not found: {path} (give an existing checkpoint to --pretrained, or train from scratch without it)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("normalize.")]
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {path} does not fit {type(model).__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model


def get_model(dataset: str = FASHIONMNIST, pretrained_path: str | None = None) -> nn.Module:
    """The classifier for ``dataset`` ("fashionmnist" -> SmallNet, "cifar10" -> ResNet18).

    With ``pretrained_path``, loads that checkpoint (see :func:`load_pretrained`).
    """
    if dataset == FASHIONMNIST:
        model: nn.Module = SmallNet()
    elif dataset == CIFAR10:
        model = ResNet18()
    else:
        raise ValueError(f"unknown dataset {dataset!r}: expected {FASHIONMNIST!r} or {CIFAR10!r}")
    if pretrained_path:
        load_pretrained(model, pretrained_path)
    return model
