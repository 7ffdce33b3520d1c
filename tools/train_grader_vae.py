"""Train the grader's VAE for the part 3 checks (the model the latent attacks and HMC run on).

The part 3 checks attack a *trained* VAE (on random weights an encoder's posterior means little),
so the grader ships one: the handout's ``models.VAE`` (z_dim 8, hidden 128) trained with the
reference ``beta_vae_loss`` (beta = 1) by the handout's ``train_vae.train`` on the whole
4-bit FashionMNIST training split. Deterministic for a given torch build (one thread, fixed seed)
and small (about 1.2 MB of float32 tensors)::

    .venv/bin/python tools/train_grader_vae.py            # writes the asset below
    .venv/bin/python tools/train_grader_vae.py --check    # retrain in memory, compare with the asset

The checks load it with ``torch.load(path, weights_only=True)`` in the trusted process and send
the tensors to the worker, which builds the same class from the staged ``models.py``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PART3 = ROOT / "solutions" / "part3"
ASSET = ROOT / "autograder" / "checks" / "part3" / "assets" / "mlpvae_fashionmnist.pt"
SEED, EPOCHS, Z_DIM, HIDDEN = 0, 3, 8, 128


def train_model() -> tuple[dict, float]:
    """(the asset's content, the test set's loss in nats per image)."""
    sys.path.insert(0, str(PART3))
    from beta_vae import beta_vae_loss
    from data import load_images
    from train_vae import train

    torch.set_num_threads(1)
    model = train(beta=1.0, epochs=EPOCHS, z_dim=Z_DIM, hidden=HIDDEN, seed=SEED)
    x, _ = load_images("test")
    torch.manual_seed(SEED)
    with torch.no_grad():
        mean, log_std = model.encoder(x)
        z = mean + torch.exp(log_std) * torch.randn_like(mean)
        test_loss = float(beta_vae_loss(x, model.decoder(z), mean, log_std, 1.0))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return {"z_dim": Z_DIM, "hidden": HIDDEN, "state": state}, test_loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped asset")
    args = parser.parse_args()
    start = time.time()
    asset, test_loss = train_model()
    print(f"trained in {time.time() - start:.0f} s; test loss {test_loss:.1f} nats per image "
          f"({test_loss / (784 * 0.6931471805599453):.3f} bits per dimension)")
    if args.check:
        shipped = torch.load(ASSET, map_location="cpu", weights_only=True)
        diff = max(float((shipped["state"][k] - v).abs().max()) for k, v in asset["state"].items())
        print(f"largest difference from the shipped asset: {diff:.3g}")
        return 0 if diff < 1e-4 else 1
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    torch.save(asset, ASSET)
    print(f"wrote {ASSET.relative_to(ROOT)} ({ASSET.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
