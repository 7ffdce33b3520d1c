"""Problem 3: SimSiam, a non-contrastive self-supervised method (IFT6135 HW3).

Chen and He, "Exploring Simple Siamese Representation Learning" (2021): two augmented views
x1, x2 of the same images go through the encoder f (backbone and projection) and the
predictor h; the loss pulls each view's prediction towards the other view's encoding, which
is held fixed (stop-gradient): the stop-gradient is what keeps the encoder from collapsing to
a constant.
"""
import torch.nn as nn

import q3_model


class CosineSimilarity(nn.Module):
    """Cosine similarity along ``dim`` (default 1: the features of a [batch_size, d] tensor)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1, x2):
        """S_c(x1, x2) = <x1, x2> / (||x1||_2 ||x2||_2) along ``self.dim``; ``eps`` keeps the
        division finite for a zero vector.

        :param x1: (FloatTensor) [batch_size, d]
        :param x2: (FloatTensor) [batch_size, d]
        :return: (FloatTensor) [batch_size]: one similarity per row, in [-1, 1].
        """
        # BEGIN SOLUTION P3.2
        dot = (x1 * x2).sum(dim=self.dim)
        norms = x1.norm(dim=self.dim) * x2.norm(dim=self.dim)
        return dot / norms.clamp(min=self.eps)
        # END SOLUTION


class SimSiam(nn.Module):
    """The Siamese network: ``encoder`` f (``base_encoder(num_classes=dim)``: backbone and
    projection, output [batch_size, dim]) and ``predictor`` h (an MLP with a bottleneck of
    ``pred_dim``). ``stop_gradient=False`` is the ablation of the report's question 4."""

    def __init__(self, base_encoder, dim: int = 2048, pred_dim: int = 512, stop_gradient: bool = True) -> None:
        super().__init__()
        self.stop_gradient = stop_gradient
        self.encoder = base_encoder(num_classes=dim)
        self.predictor = q3_model.mlp_predictor(dim, pred_dim)

    def forward(self, x1, x2):
        """The two views' predictions and targets.

        z1 = f(x1), z2 = f(x2) (the encoder), p1 = h(z1), p2 = h(z2) (the predictor). With
        ``self.stop_gradient`` the targets z1, z2 are returned detached (no gradient flows
        through them); without it they are returned as computed.

        :param x1: (FloatTensor) [batch_size, ...] first augmented view.
        :param x2: (FloatTensor) [batch_size, ...] second augmented view.
        :return: p1, p2, z1, z2, each [batch_size, dim].
        """
        # BEGIN SOLUTION P3.1
        z1, z2 = self.encoder(x1), self.encoder(x2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        if self.stop_gradient:
            z1, z2 = z1.detach(), z2.detach()
        return p1, p2, z1, z2
        # END SOLUTION

    def loss(self, p1, p2, z1, z2, similarity_function):
        """The symmetric SimSiam loss with D the negative cosine similarity:

            L = 0.5 * D(p1, z2) + 0.5 * D(p2, z1),   D(p, z) = -mean_i similarity_function(p_i, z_i)

        The targets are used as given: ``forward`` has already stopped their gradient when
        ``self.stop_gradient`` is set, and without it gradients must flow into them.

        :param p1, p2: (FloatTensor) [batch_size, dim] predictions.
        :param z1, z2: (FloatTensor) [batch_size, dim] targets.
        :param similarity_function: a callable like ``CosineSimilarity()``: [batch_size] similarities.
        :return: (FloatTensor) a scalar.
        """
        # BEGIN SOLUTION P3.3
        return -0.5 * (similarity_function(p1, z2).mean() + similarity_function(p2, z1).mean())
        # END SOLUTION
