# Template-style submission (see utils.py): the Lightning VAE as a UvA 2024 student writes it.
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from mnist import mnist
from cnn_encoder_decoder import CNNEncoder, CNNDecoder
from utils import *


class VAE(pl.LightningModule):

    def __init__(self, num_filters, z_dim, lr):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = CNNEncoder(z_dim=z_dim, num_filters=num_filters)
        self.decoder = CNNDecoder(z_dim=z_dim, num_filters=num_filters)

    def forward(self, imgs):
        mean, log_std = self.encoder(imgs)
        std = torch.exp(log_std)
        z = sample_reparameterize(mean, std)
        x_hat = self.decoder(z)
        targets = imgs.squeeze(dim=1).long()
        L_rec = F.cross_entropy(x_hat, targets, reduction="none").sum(dim=[1, 2]).mean()
        L_reg = KLD(mean, log_std).mean()
        elbo = L_rec + L_reg
        bpd = elbo_to_bpd(elbo, imgs.shape)
        return L_rec, L_reg, bpd

    @torch.no_grad()
    def sample(self, batch_size):
        z = torch.randn(batch_size, self.hparams.z_dim).to(self.device)
        logits = self.decoder(z)
        probs = F.softmax(logits, dim=1)
        B, C, H, W = probs.shape
        flat = probs.permute(0, 2, 3, 1).reshape(-1, C)
        pixels = torch.multinomial(flat, num_samples=1)
        x_samples = pixels.reshape(B, H, W).unsqueeze(1)
        return x_samples

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def training_step(self, batch, batch_idx):
        L_rec, L_reg, bpd = self.forward(batch[0])
        self.log("train_bpd", bpd, on_step=False, on_epoch=True)
        return bpd

    def validation_step(self, batch, batch_idx):
        L_rec, L_reg, bpd = self.forward(batch[0])
        self.log("val_bpd", bpd)

    def test_step(self, batch, batch_idx):
        L_rec, L_reg, bpd = self.forward(batch[0])
        self.log("test_bpd", bpd)


def train_vae(args):
    os.makedirs(args.log_dir, exist_ok=True)
    train_loader, val_loader, test_loader = mnist(batch_size=args.batch_size, num_workers=args.num_workers,
                                                   root=args.data_dir)
    trainer = pl.Trainer(default_root_dir=args.log_dir, accelerator="auto", max_epochs=args.epochs,
                         callbacks=[ModelCheckpoint(save_weights_only=True, mode="min", monitor="val_bpd")])
    pl.seed_everything(args.seed)
    model = VAE(num_filters=args.num_filters, z_dim=args.z_dim, lr=args.lr)
    trainer.fit(model, train_loader, val_loader)
    return trainer.test(model, dataloaders=test_loader, verbose=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--z_dim", default=20, type=int)
    parser.add_argument("--num_filters", default=32, type=int)
    parser.add_argument("--lr", default=1e-3, type=float)
    parser.add_argument("--batch_size", default=128, type=int)
    parser.add_argument("--epochs", default=80, type=int)
    parser.add_argument("--seed", default=42, type=int)
    parser.add_argument("--num_workers", default=4, type=int)
    parser.add_argument("--data_dir", default="../data/", type=str)
    parser.add_argument("--log_dir", default="VAE_logs", type=str)
    train_vae(parser.parse_args())
