"""Convolutional encoder q(z|x) and decoder p(x|z) for 28x28 4-bit images.

Graded file. The suggested architecture follows the autoencoder of the UvA Deep
Learning Tutorial 9 (strided 3x3 convolutions with GELU, halving the resolution
28 -> 14 -> 7 -> 4, then a linear layer), adapted to 28x28 inputs and to 16-way
categorical pixels. Any architecture that keeps the interfaces below is accepted.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


class CNNEncoder(nn.Module):
    def __init__(self, num_input_channels: int = 1, num_filters: int = 32, z_dim: int = 20) -> None:
        """Encoder network mapping an image to the parameters of a diagonal Gaussian q(z|x).

        Args:
            num_input_channels: channels of the input images (1 for (Fashion)MNIST).
            num_filters: channels of the first convolutions; deeper layers use twice as many.
            z_dim: dimensionality of the latent space.
        """
        super().__init__()
        raise NotImplementedError('CNNEncoder.__init__ (Q1.8) is not implemented yet: write your code here, in part1/cnn_encoder_decoder.py.')

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a batch of 4-bit images.

        Args:
            x: long tensor ``[B, C, 28, 28]`` with integer pixel values in ``[0, 15]``.

        Returns:
            ``(mean, log_std)``: two float tensors ``[B, z_dim]``, the mean and the log
            standard deviation of q(z|x) (log std so that the network output is unconstrained).
        """
        x = x.float() / 15 * 2.0 - 1.0  # 4-bit integers -> floats in [-1, 1]
        raise NotImplementedError('CNNEncoder.forward (Q1.8) is not implemented yet: write your code here, in part1/cnn_encoder_decoder.py.')


class CNNDecoder(nn.Module):
    def __init__(self, num_input_channels: int = 16, num_filters: int = 32, z_dim: int = 20) -> None:
        """Decoder network mapping a latent vector to per-pixel categorical logits p(x|z).

        Args:
            num_input_channels: number of categories per pixel (16 for 4-bit images); the
                decoder outputs one logit per category and pixel.
            num_filters: channels of the last convolutions; earlier layers use twice as many.
            z_dim: dimensionality of the latent space.
        """
        super().__init__()
        raise NotImplementedError('CNNDecoder.__init__ (Q1.8) is not implemented yet: write your code here, in part1/cnn_encoder_decoder.py.')

    def forward(self, z: Tensor) -> Tensor:
        """Decode a batch of latent vectors.

        Args:
            z: float tensor ``[B, z_dim]``.

        Returns:
            float tensor ``[B, 16, 28, 28]`` of unnormalised logits (no softmax): entry
            ``[b, k, i, j]`` scores pixel ``(i, j)`` of image ``b`` taking the value ``k``.
        """
        raise NotImplementedError('CNNDecoder.forward (Q1.8) is not implemented yet: write your code here, in part1/cnn_encoder_decoder.py.')

    @property
    def device(self) -> torch.device:
        """The device of the decoder's parameters (where new latents should be created)."""
        return next(self.parameters()).device
