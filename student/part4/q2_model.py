"""Critics for problem 2 (given; not graded).

``Critic(input_size)``: an MLP for the 2-D toy distributions. ``ImageCritic()``: a small
convolutional critic for [B, 3, 32, 32] images. Neither uses batch normalisation: the
Lipschitz penalty is per example, and batch statistics would mix the examples.
"""
import torch.nn as nn


class Critic(nn.Module):
    def __init__(self, input_size: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1))


class ImageCritic(nn.Module):
    def __init__(self, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, 1),
        )

    def forward(self, x):
        return self.net(x)
