"""
Template-style solution of IFT6135 HW3 problem 3 (SimSiam, 2022), written for the project's
tests the way a student of the course's template writes it.
"""
import torch
import torch.nn as nn

import q3_model


class CosineSimilarity(nn.Module):
    def __init__(self, dim=1, eps=1e-8):
        super(CosineSimilarity, self).__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1, x2):
        x1_norm = torch.sqrt(torch.sum(x1 ** 2, dim=self.dim))
        x2_norm = torch.sqrt(torch.sum(x2 ** 2, dim=self.dim))
        denominator = torch.clamp(x1_norm * x2_norm, min=self.eps)
        return torch.sum(x1 * x2, dim=self.dim) / denominator


class SimSiam(nn.Module):
    def __init__(self, base_encoder, dim=2048, pred_dim=512, stop_gradient=True):
        super(SimSiam, self).__init__()
        self.stop_gradient = stop_gradient
        self.encoder = base_encoder(num_classes=dim)
        self.predictor = q3_model.mlp_predictor(dim, pred_dim)

    def forward(self, x1, x2):
        z1 = self.encoder(x1)
        z2 = self.encoder(x2)
        p1 = self.predictor(z1)
        p2 = self.predictor(z2)
        if self.stop_gradient:
            return p1, p2, z1.detach(), z2.detach()
        return p1, p2, z1, z2

    def loss(self, p1, p2, z1, z2, similarity_function):
        loss_1 = -similarity_function(p1, z2).mean()
        loss_2 = -similarity_function(p2, z1).mean()
        return 0.5 * loss_1 + 0.5 * loss_2
