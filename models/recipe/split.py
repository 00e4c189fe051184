#!/usr/bin/env python3
"""Split a class-folder dataset into train and held-out folders of symlinks.

The split is decided by a hash of each file name, so it is the same on every machine and
never depends on directory order or a random seed: a file is held out when the first eight
hex digits of its SHA-1, read as a fraction, are below --holdout.
"""
import argparse
import hashlib
import os
import sys
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def held_out(name: str, fraction: float) -> bool:
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) / 0x1_0000_0000 < fraction


def parse_map(pairs):
    mapping = {}
    for pair in pairs or []:
        src, sep, dst = pair.partition("=")
        if not sep:
            sys.exit(f"--map expects SRC=DST, got {pair!r}")
        mapping[src] = dst
    return mapping


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path, help="folder with one sub-folder per class")
    ap.add_argument("dst", type=Path, help="output: DST/train/<class>, DST/heldout/<class>")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--map", action="append", help="rename a class folder: SRC=DST")
    args = ap.parse_args()
    mapping = parse_map(args.map)
    counts = {}
    for class_dir in sorted(p for p in args.src.iterdir() if p.is_dir()):
        label = mapping.get(class_dir.name, class_dir.name)
        for image in sorted(class_dir.iterdir()):
            if image.suffix.lower() not in IMAGE_EXTS:
                continue
            part = "heldout" if held_out(image.name, args.holdout) else "train"
            out = args.dst / part / label
            out.mkdir(parents=True, exist_ok=True)
            link = out / image.name
            if not link.exists():
                os.symlink(image.resolve(), link)
            counts[(part, label)] = counts.get((part, label), 0) + 1
    for (part, label), n in sorted(counts.items()):
        print(f"{part:8} {label:40} {n}")


if __name__ == "__main__":
    main()
