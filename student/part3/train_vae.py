"""Train part 3's MLP VAE with your beta_vae_loss (given, not graded).

    python train_vae.py                       # beta = 1, 3 epochs, saves vae_beta1.pt
    python train_vae.py --beta 4 --out vae_beta4.pt

About 20 s per epoch on two CPU cores. run_attacks.py then attacks the saved models.
"""
from __future__ import annotations

import argparse

import torch

from beta_vae import beta_vae_loss
from data import load_images
from models import VAE


def train(beta: float = 1.0, epochs: int = 3, z_dim: int = 8, hidden: int = 128, batch_size: int = 128,
          lr: float = 1e-3, seed: int = 0, limit: int | None = None) -> VAE:
    torch.manual_seed(seed)
    images, _ = load_images("train", limit=limit)
    model = VAE(z_dim, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=g)
        total = 0.0
        for start in range(0, len(images), batch_size):
            x = images[order[start:start + batch_size]]
            mean, log_std = model.encoder(x)
            z = mean + torch.exp(log_std) * torch.randn_like(mean)
            loss = beta_vae_loss(x, model.decoder(z), mean, log_std, beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
        print(f"epoch {epoch + 1}: loss {total / len(images):.1f} nats per image")
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--z_dim", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model = train(args.beta, args.epochs, args.z_dim, seed=args.seed)
    out = args.out or f"vae_beta{args.beta:g}.pt"
    torch.save({"z_dim": args.z_dim, "hidden": 128, "state": model.state_dict()}, out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
