"""Reference of the fake graded file."""
import torch


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def scale(x: torch.Tensor, k: float) -> torch.Tensor:
    return x * k
