#!/usr/bin/env python3
"""Train an Inspecta classifier: a frozen EfficientNet-Lite0 trunk plus a linear head.

The trunk is the ImageNet backbone cut after a mid-level block (default `add_171`, 112
channels at 14x14): early blocks carry the texture and edge features that surface defects
show, and dropping the deep blocks keeps the model at ~3 MB and fast on two CPU cores.
Each channel is pooled twice, mean (global texture) and max (one local blemish), and a
softmax regression on those pooled features is the only trained part. Standardisation is
folded into the Gemm weights, so the exported ONNX takes the same input as the backbone.

Output: DIR/model.onnx, DIR/model.toml (the manifest Inspecta reads), DIR/training.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SIZE = 224
MEAN, STD = 127.0, 128.0


def trunk(backbone: Path, cut: str) -> onnx.ModelProto:
    """The backbone from `input` up to tensor `cut`, with a free batch dimension."""
    inferred = onnx.shape_inference.infer_shapes(onnx.load(backbone))
    model = onnx.utils.Extractor(inferred).extract_model(["input"], [cut])
    del model.graph.value_info[:]
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    return model


def add_pooling(model: onnx.ModelProto, cut: str) -> None:
    g = model.graph
    g.node.extend([
        helper.make_node("GlobalAveragePool", [cut], ["pool_mean"]),
        helper.make_node("GlobalMaxPool", [cut], ["pool_max"]),
        helper.make_node("Concat", ["pool_mean", "pool_max"], ["pool_cat"], axis=1),
        helper.make_node("Flatten", ["pool_cat"], ["pooled"], axis=1),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", None]))


def load_image(path: Path, flip: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    x = (np.asarray(im, np.float32) - MEAN) / STD
    if flip & 1:
        x = x[:, ::-1]
    if flip & 2:
        x = x[::-1]
    return x.transpose(2, 0, 1)


def list_images(root: Path, labels: list[str]):
    files, targets = [], []
    for index, label in enumerate(labels):
        for f in sorted((root / label).iterdir()):
            if f.suffix.lower() in IMAGE_EXTS:
                files.append(f)
                targets.append(index)
    return files, np.array(targets)


def features(session, files, flips, batch=32):
    rows = []
    for flip in flips:
        for start in range(0, len(files), batch):
            x = np.stack([load_image(f, flip) for f in files[start:start + batch]])
            rows.append(session.run(["pooled"], {"input": x})[0])
    return np.concatenate(rows)


def fit_softmax(x, y, classes, l2, iters=3000, lr=0.05):
    """Full-batch Adam on L2-regularised softmax regression over standardised features."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn = (x - mu) / sd
    n, f = xn.shape
    w, b = np.zeros((f, classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    moments = [(np.zeros_like(w), np.zeros_like(w)), (np.zeros_like(b), np.zeros_like(b))]
    for t in range(1, iters + 1):
        z = xn @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        for param, grad, (m, v) in zip((w, b), (xn.T @ g + l2 * w, g.sum(0)), moments):
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    # Fold the standardisation into the linear layer: ((x - mu) / sd) w + b.
    w_folded = w / sd[:, None]
    return w_folded.astype(np.float32), (b - (mu / sd) @ w).astype(np.float32)


def add_head(model: onnx.ModelProto, w, b) -> None:
    g = model.graph
    g.initializer.extend([numpy_helper.from_array(w, "head_w"), numpy_helper.from_array(b, "head_b")])
    g.node.extend([
        helper.make_node("Gemm", ["pooled", "head_w", "head_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ])
    del g.output[:]
    g.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", w.shape[1]]))


def toml_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_manifest(out: Path, args, labels, metrics) -> None:
    good = args.good or []
    lines = [
        "# Inspecta model manifest, written by models/recipe/train.py.",
        f"name = {json.dumps(args.name)}",
        f"version = {json.dumps(args.version)}",
        f"description = {json.dumps(args.description)}",
        'onnx = "model.onnx"',
        f"labels = {toml_list(labels)}",
        f"good = {toml_list(good)}",
        "",
        "[input]",
        f"width = {SIZE}",
        f"height = {SIZE}",
        'layout = "nchw"',
        'color = "rgb"',
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
        f"class_threshold = {args.class_threshold}",
        "",
        "[training]",
        f"data = {json.dumps(str(args.data))}",
        f"images = {metrics['train_images']}",
        f"heldout_accuracy = {metrics.get('heldout_accuracy', 'nan')}",
        f"recipe = {json.dumps(f'models/recipe/train.py --cut {args.cut} --l2 {args.l2}' + (' --flips' if args.flips else ''))}",
    ]
    (out / "model.toml").write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="training folder, one sub-folder per class")
    ap.add_argument("--heldout", type=Path, help="held-out folder with the same classes, for the report")
    ap.add_argument("--backbone", type=Path, required=True, help="EfficientNet-Lite0 ImageNet ONNX")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--description", default="")
    ap.add_argument("--good", action="append", help="label that means a good part (repeatable)")
    ap.add_argument("--cut", default="add_171", help="backbone tensor the trunk ends at")
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--flips", action="store_true", help="also train on flipped images")
    ap.add_argument("--defect-threshold", type=float, default=0.5)
    ap.add_argument("--uncertain-band", type=float, nargs=2, default=(0.5, 0.5))
    ap.add_argument("--class-threshold", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    labels = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    for label in args.good or []:
        if label not in labels:
            raise SystemExit(f"--good {label!r} is not a class folder of {args.data}: {labels}")
    model = trunk(args.backbone, args.cut)
    add_pooling(model, args.cut)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(model.SerializeToString(), options)

    started = time.time()
    files, y = list_images(args.data, labels)
    flips = (0, 1, 2, 3) if args.flips else (0,)
    x = features(session, files, flips)
    y_all = np.tile(y, len(flips))
    w, b = fit_softmax(x, y_all, len(labels), args.l2)
    metrics = {"labels": labels, "train_images": len(files), "train_seconds": round(time.time() - started, 1)}
    train_pred = (x[: len(files)] @ w + b).argmax(1)
    metrics["train_accuracy"] = float((train_pred == y).mean())
    if args.heldout:
        test_files, y_test = list_images(args.heldout, labels)
        pred = (features(session, test_files, (0,)) @ w + b).argmax(1)
        metrics["heldout_images"] = len(test_files)
        metrics["heldout_accuracy"] = round(float((pred == y_test).mean()), 5)

    add_head(model, w, b)
    model.producer_name = "inspecta-recipe"
    helper.set_model_props(model, {
        "Image.BitmapPixelFormat": "Rgb8",
        "Image.NominalPixelRange": "NominalRange_0_255",
        "labels": ",".join(labels),
    })
    onnx.checker.check_model(model)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out / "model.onnx")
    write_manifest(args.out, args, labels, metrics)
    (args.out / "training.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
