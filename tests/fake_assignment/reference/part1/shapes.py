import torch


def ones(n: int) -> torch.Tensor:
    return torch.ones(n)
