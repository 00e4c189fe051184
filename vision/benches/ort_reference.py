#!/usr/bin/env python3
"""ONNX Runtime reference for the inference benchmark: runs the same model on the same
preprocessed inputs that Inspecta's bench wrote, and prints latencies and scores as JSON."""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True, help="little-endian f32, images back to back")
    ap.add_argument("--shape", required=True, help="one image's shape, e.g. 1,3,224,224")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    args = ap.parse_args()
    shape = [int(d) for d in args.shape.split(",")]
    images = np.fromfile(args.inputs, dtype="<f4").reshape([-1] + shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    scores = [session.run(None, {name: x})[0].ravel().tolist() for x in images]  # also warms up
    latencies = []
    for _ in range(args.rounds):
        for x in images:
            start = time.perf_counter()
            session.run(None, {name: x})
            latencies.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"version": ort.__version__, "latencies_ms": latencies, "scores": scores}))


if __name__ == "__main__":
    main()
