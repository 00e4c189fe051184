#!/usr/bin/env python3
"""Train a small plain-convolution classifier for one part, end to end (torch, build time).

Why not the frozen EfficientNet-Lite trunk: tract runs depthwise and small-K convolutions
3-4x slower than ONNX Runtime, and they make up most of that trunk. A stack of 3x3
convolutions (BatchNorm folded in, ReLU) is what tract's matrix kernels run well: 82 MMAC
at 160x160 grey run in about 3 ms on one core, against 21-24 ms for the v1 model. It is
trained from the part's own images, so it knows one part; `inspecta train` keeps the
pretrained trunk for the parts a station learns on the box.

Each channel of the last map is pooled by mean and by max (one small blemish counts) into a
linear softmax head. Training sees every image in the 8 orientations of a square (a part
seen from above has no up) and with its brightness and contrast moved a little (lamps and
lots differ), so the held-out figures are not those of one lighting.

Output: DIR/model.onnx (written node by node, checked against torch with ONNX Runtime),
DIR/model.toml, DIR/training.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from torch import nn

from train import list_images, toml_list

MEAN, STD = 127.0, 128.0
# (output channels, stride) of each 3x3 convolution.
LAYERS = [(16, 2), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1)]
FEATURES = "features"


class Plain(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        layers, c = [], 1
        for out, stride in LAYERS:
            layers += [nn.Conv2d(c, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * c, classes)

    def forward(self, x):
        f = self.body(x)
        return self.head(self.drop(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)))


def load(files, size: int) -> torch.Tensor:
    """Grey, stretched to size x size with PIL's bilinear filter: what Inspecta's
    preprocessing does (BT.601 luma, bilinear convolution resize)."""
    out = np.empty((len(files), 1, size, size), np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            out[i, 0] = np.asarray(im.convert("L").resize((size, size), Image.BILINEAR))
    return torch.from_numpy(out)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() - MEAN) / STD


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image in one of the 8 orientations, with a random gain and offset."""
    n = x.shape[0]
    pick = torch.randint(0, 8, (n,), generator=g)
    x = torch.where((pick & 1).bool()[:, None, None, None], x.flip(3), x)
    x = torch.where((pick & 2).bool()[:, None, None, None], x.flip(2), x)
    x = torch.where((pick & 4).bool()[:, None, None, None], x.transpose(2, 3), x)
    gain = 1 + 0.15 * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1)
    offset = 0.12 * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1)
    return x * gain + offset


def train(model, x, y, args) -> list[float]:
    g = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    yt = torch.from_numpy(y)
    losses = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        total, started = 0.0, time.time()
        for start in range(0, len(x), args.batch):
            idx = order[start:start + args.batch]
            batch = augment(normalise(x[idx]), g)
            loss = loss_fn(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        print(f"epoch {epoch + 1}/{args.epochs}: loss {losses[-1]:.4f} ({time.time() - started:.0f} s)", flush=True)
    return losses


@torch.no_grad()
def probabilities(model, x, batch=256) -> np.ndarray:
    model.eval()
    return np.concatenate([torch.softmax(model(normalise(x[s:s + batch])), 1).numpy()
                           for s in range(0, len(x), batch)])


def folded(conv: nn.Conv2d, bn: nn.BatchNorm2d):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale[:, None, None, None]
    b = bn.bias - bn.running_mean * scale
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)


def to_onnx(model: Plain, size: int, labels: list[str]) -> onnx.ModelProto:
    """Conv (BatchNorm folded) + Relu per layer, then the pooled head: the graph tract runs."""
    nodes, inits, x = [], [], "input"
    mods = list(model.body)
    for i in range(0, len(mods), 3):
        conv, bn = mods[i], mods[i + 1]
        w, b = folded(conv, bn)
        n = i // 3
        inits += [numpy_helper.from_array(w, f"conv{n}_w"), numpy_helper.from_array(b, f"conv{n}_b")]
        out = FEATURES if i + 3 == len(mods) else f"relu{n}"
        s = conv.stride[0]
        nodes += [helper.make_node("Conv", [x, f"conv{n}_w", f"conv{n}_b"], [f"conv{n}"],
                                   kernel_shape=[3, 3], strides=[s, s], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{n}"], [out])]
        x = out
    inits += [numpy_helper.from_array(model.head.weight.detach().numpy(), "head_w"),
              numpy_helper.from_array(model.head.bias.detach().numpy(), "head_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pool_mean"]),
              helper.make_node("GlobalMaxPool", [x], ["pool_max"]),
              helper.make_node("Concat", ["pool_mean", "pool_max"], ["pool_cat"], axis=1),
              helper.make_node("Flatten", ["pool_cat"], ["pooled"], axis=1),
              helper.make_node("Gemm", ["pooled", "head_w", "head_b"], ["logits"], transB=1),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "inspecta-plain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(labels)])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="inspecta-recipe")
    m.ir_version = 8
    helper.set_model_props(m, {"Image.BitmapPixelFormat": "Gray8",
                               "Image.NominalPixelRange": "NominalRange_0_255", "labels": ",".join(labels)})
    onnx.checker.check_model(m, full_check=True)
    return m


def heldout_figures(p: np.ndarray, y: np.ndarray, labels: list[str], good: list[str], threshold: float):
    good_index = [labels.index(g) for g in good]
    defect_score = 1 - p[:, good_index].sum(1)
    is_defect = ~np.isin(y, good_index)
    escapes = int(((defect_score < threshold) & is_defect).sum())
    return {
        "heldout_images": int(len(y)),
        "heldout_accuracy": round(float((p.argmax(1) == y).mean()), 5),
        "heldout_defects": int(is_defect.sum()),
        "heldout_escapes": escapes,
        "heldout_false_rejects": int(((defect_score >= threshold) & ~is_defect).sum()),
    }


def write_manifest(out: Path, args, labels, metrics, recipe: str) -> None:
    lines = [
        "# Inspecta model manifest, written by models/recipe/train_plain.py.",
        f"name = {json.dumps(args.name)}",
        f"version = {json.dumps(args.version)}",
        f"description = {json.dumps(args.description)}",
        'onnx = "model.onnx"',
        f"labels = {toml_list(labels)}",
        f"good = {toml_list(args.good)}",
        "",
        "[input]",
        f"width = {args.size}",
        f"height = {args.size}",
        'layout = "nchw"',
        'color = "gray"',
        'resize = "stretch"',
        f"mean = [{MEAN}, {MEAN}, {MEAN}]",
        f"std = [{STD}, {STD}, {STD}]",
        "",
        "[output]",
        'name = "probabilities"',
        'scores = "probabilities"',
        "",
        "[decision]",
        f"defect_threshold = {args.defect_threshold}",
        f"uncertain_band = [{args.uncertain_band[0]}, {args.uncertain_band[1]}]",
        "class_threshold = 0.0",
        "",
        "[training]",
        f"data = {json.dumps(str(args.data))}",
        f"images = {metrics['train_images']}",
        f"heldout_accuracy = {metrics.get('heldout_accuracy', 'nan')}",
        f"recipe = {json.dumps(recipe)}",
    ]
    (out / "model.toml").write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="training folder, one sub-folder per class")
    ap.add_argument("--heldout", type=Path, help="held-out folder with the same classes, for the report")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--description", default="")
    ap.add_argument("--good", action="append", required=True, help="label that means a good part")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--defect-threshold", type=float, default=0.5)
    ap.add_argument("--uncertain-band", type=float, nargs=2, default=(0.5, 0.5))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    labels = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    for label in args.good:
        if label not in labels:
            raise SystemExit(f"--good {label!r} is not a class folder of {args.data}: {labels}")
    started = time.time()
    files, y = list_images(args.data, labels)
    x = load(files, args.size)
    model = Plain(len(labels))
    losses = train(model, x, y, args)
    metrics = {"labels": labels, "train_images": len(files), "train_seconds": round(time.time() - started, 1),
               "final_loss": round(losses[-1], 5)}
    onnx_model = to_onnx(model, args.size, labels)
    check = x[:32]
    ours = ort.InferenceSession(onnx_model.SerializeToString()).run(
        ["probabilities"], {"input": normalise(check).numpy()})[0]
    metrics["onnx_max_abs_diff"] = float(np.abs(ours - probabilities(model, check)).max())
    if args.heldout:
        test_files, y_test = list_images(args.heldout, labels)
        p = probabilities(model, load(test_files, args.size))
        metrics.update(heldout_figures(p, y_test, labels, args.good, args.defect_threshold))
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, args.out / "model.onnx")
    recipe = (f"models/recipe/train_plain.py --size {args.size} --epochs {args.epochs} --batch {args.batch} "
              f"--lr {args.lr} --weight-decay {args.weight_decay} --label-smoothing {args.label_smoothing} "
              f"--seed {args.seed} (torch {torch.__version__}, layers {LAYERS})")
    write_manifest(args.out, args, labels, metrics, recipe)
    (args.out / "training.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
