#!/usr/bin/env python3
"""Writes the tiny ONNX files the tests use for shapes no real classifier has.

Run from the repository root: python3 models/recipe/make_test_fixtures.py
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path("vision/tests/fixtures")


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="inspecta-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, OUT / name)


def vector_input():
    """A classifier over a flat feature vector: input rank 2, not an image."""
    w = numpy_helper.from_array(np.ones((10, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["scores"])],
        "vector_input",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    save(graph, "vector_input.onnx")


def custom_vision_style():
    """A 2-class BGR image classifier that carries Custom Vision image metadata instead of
    a manifest: mean over pixels, then a fixed linear map and softmax."""
    w = numpy_helper.from_array(np.array([[-1, 1], [0, 0], [1, -1]], np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["model_output"], axis=1),
        ],
        "custom_vision_style",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("model_output", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="inspecta-fixtures")
    model.ir_version = 8
    helper.set_model_props(model, {"Image.BitmapPixelFormat": "Bgr8", "Image.NominalPixelRange": "Normalized_0_1"})
    onnx.checker.check_model(model)
    out = OUT / "custom_vision"
    out.mkdir(exist_ok=True)
    onnx.save(model, out / "model.onnx")
    (out / "labels.txt").write_text("reddish\nblueish\n")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    vector_input()
    custom_vision_style()
