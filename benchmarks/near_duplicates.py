"""Where the near-duplicate limit comes from: pHash distances of re-encoded, resized copies vs. distinct photos.

For a real dataset: decode every image as training does, hash it (edgeclf.train.datacheck), then
* make copies of a seeded sample of photos (resized to 30/50/80 % with LANCZOS, JPEG quality 60/70/85), decode and
  hash them, and record each copy's distance to its original;
* record every image's distance to its nearest *other* image in the dataset (small values there are real
  near-duplicates or the limit's false positives: look at them).

    python -m benchmarks.near_duplicates ../shared/data/clothing-dataset-small --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from edgeclf.runtime.preprocess import load_image
from edgeclf.train import datacheck
from edgeclf.train.cache import decode_all
from edgeclf.train.dataset import discover

COPIES = ((0.3, 60), (0.5, 70), (0.8, 85))  # (scale, JPEG quality)


def copy_distances(paths: list[Path], bits: np.ndarray, sample: int, size: int, seed: int = 0) -> list[int]:
    """Distance of each re-encoded, resized copy to its original's hash."""
    picked = np.random.default_rng(seed).choice(len(paths), min(sample, len(paths)), replace=False)
    out = []
    for i in picked:
        image = Image.open(paths[i]).convert("RGB")
        for scale, quality in COPIES:
            small = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))),
                                 Image.Resampling.LANCZOS)
            data = io.BytesIO()
            small.save(data, "JPEG", quality=quality)
            copy = datacheck.perceptual_hashes(load_image(data.getvalue(), (size, size))[None])[0]
            out.append(int((copy != bits[i]).sum()))
    return out


def nearest_other(bits: np.ndarray) -> np.ndarray:
    """Each image's distance to its nearest other image."""
    packed = np.packbits(bits, axis=1)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)
    nearest = []
    for start in range(0, len(packed), 256):
        d = popcount[packed[start:start + 256, None, :] ^ packed[None]].sum(axis=2)
        d[np.arange(len(d)), start + np.arange(len(d))] = bits.shape[1] + 1
        nearest.append(d.min(axis=1))
    return np.concatenate(nearest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    layout = discover(args.data)
    paths = [p for *_, p in layout.files()]
    cache = decode_all(paths, args.image_size)
    bits = datacheck.perceptual_hashes(cache.pixels)
    copies = copy_distances([paths[i] for i in cache.keep], bits, args.sample, args.image_size)
    nearest = nearest_other(bits)
    result = {"data": args.data, "images": len(bits), "hash_bits": int(bits.shape[1]),
              "near_distance": datacheck.NEAR_DISTANCE, "copies": {"n": len(copies), "max": max(copies),
                                                                    "histogram": np.bincount(copies).tolist()},
              "nearest_other": {"smallest_20": np.sort(nearest)[:20].tolist(),
                                "within_limit": int((nearest <= datacheck.NEAR_DISTANCE).sum())}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
