#!/usr/bin/env python3
"""The peer stack for the throughput bench: what a user would write with ONNX Runtime to
judge a folder of images. PIL decodes and resizes (bilinear, stretched, as the model's
manifest says), numpy normalises, each worker process runs its own single-threaded session.
Prints images/s and per-image p50/p99 (decode + preprocess + inference) as JSON.
"""
import argparse
import json
import multiprocessing as mp
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}

_session = None
_spec = None


def start(model_dir: str):
    global _session, _spec
    manifest = tomllib.loads((Path(model_dir) / "model.toml").read_text())
    _spec = manifest["input"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    _session = ort.InferenceSession(str(Path(model_dir) / manifest["onnx"]), options,
                                    providers=["CPUExecutionProvider"])


def judge(path: str) -> float:
    started = time.perf_counter()
    gray = _spec.get("color", "rgb") == "gray"
    with Image.open(path) as im:
        im = im.convert("L" if gray else "RGB").resize((_spec["width"], _spec["height"]), Image.BILINEAR)
    x = np.asarray(im, np.float32)
    x = x[:, :, None] if gray else x
    c = x.shape[2]
    x = (x - np.array(_spec["mean"][:c], np.float32)) / np.array(_spec["std"][:c], np.float32)
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    _session.run(None, {_session.get_inputs()[0].name: x})
    return (time.perf_counter() - started) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="model directory (model.toml + ONNX)")
    ap.add_argument("--folder", required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.folder).rglob("*") if p.suffix.lower() in EXTS)
    with mp.Pool(args.workers, initializer=start, initargs=(args.model,)) as pool:
        pool.map(judge, files[: args.workers * 4])  # sessions made and warm
        started = time.perf_counter()
        times = []
        for _ in range(args.rounds):
            times += pool.map(judge, files, chunksize=8)
        elapsed = time.perf_counter() - started
    times.sort()
    print(json.dumps({
        "version": ort.__version__,
        "images": len(times),
        "images_per_s": len(times) / elapsed,
        "p50_ms": times[len(times) // 2],
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
    }))


if __name__ == "__main__":
    main()
