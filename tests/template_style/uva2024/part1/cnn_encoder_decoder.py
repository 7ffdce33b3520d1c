# Template-style submission (see utils.py): a student's encoder and decoder in the UvA layout.
import torch
import torch.nn as nn
import numpy as np


class CNNEncoder(nn.Module):
    def __init__(self, num_input_channels: int = 1, num_filters: int = 32,
                 z_dim: int = 20):
        super().__init__()
        c_hid = num_filters
        self.net = nn.Sequential(
            nn.Conv2d(num_input_channels, c_hid, kernel_size=3, padding=1, stride=2),  # 28 -> 14
            nn.GELU(),
            nn.Conv2d(c_hid, c_hid, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(c_hid, 2 * c_hid, kernel_size=3, padding=1, stride=2),  # 14 -> 7
            nn.GELU(),
            nn.Flatten(),
        )
        self.mean_layer = nn.Linear(2 * c_hid * 7 * 7, z_dim)
        self.log_std_layer = nn.Linear(2 * c_hid * 7 * 7, z_dim)

    def forward(self, x):
        x = x.float() / 15 * 2.0 - 1.0
        h = self.net(x)
        mean = self.mean_layer(h)
        log_std = self.log_std_layer(h)
        return mean, log_std


class CNNDecoder(nn.Module):
    def __init__(self, num_input_channels: int = 16, num_filters: int = 32,
                 z_dim: int = 20):
        super().__init__()
        c_hid = num_filters
        self.linear = nn.Sequential(nn.Linear(z_dim, 2 * 7 * 7 * c_hid), nn.GELU())
        self.c_hid = c_hid
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c_hid, c_hid, kernel_size=3, output_padding=1, padding=1, stride=2),  # 7 -> 14
            nn.GELU(),
            nn.Conv2d(c_hid, c_hid, kernel_size=3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(c_hid, num_input_channels, kernel_size=3, output_padding=1, padding=1, stride=2),  # 14 -> 28
        )

    def forward(self, z):
        x = self.linear(z)
        x = x.reshape(x.shape[0], -1, 7, 7)
        x = self.net(x)
        return x

    @property
    def device(self):
        return next(self.parameters()).device
