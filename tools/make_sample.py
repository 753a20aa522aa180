"""Write the bundled sample image ``samples/nuclei.czi`` (or any size, for benchmarks).

A synthetic two-channel fluorescence-like uint16 image with a fixed seed: channel 0 holds
round "nuclei" (the nuclei example's input), channel 1 a dimmer cytoplasm-like halo around
them; both over a dark, slightly noisy background, at a 12-bit camera's range (0..4095).
Written through ZEISS's pylibCZIrw, band by band, so 16k x 16k images need no 1 GB array.

    python tools/make_sample.py                          # samples/nuclei.czi, 512 x 512
    python tools/make_sample.py --size 4096 --out /tmp/big.czi
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: Rows written per band (bounded memory for large images).
BAND = 1024
#: Nuclei per megapixel.
DENSITY = 180


def _nuclei(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    count = max(1, int(DENSITY * size * size / 1e6))
    centres = rng.uniform(0, size, (count, 2))
    radii = rng.uniform(6, 14, count)
    levels = rng.uniform(1500, 3800, count)
    return np.column_stack([centres, radii, levels])


def band(size: int, y0: int, rows: int, nuclei: np.ndarray, seed: int) -> np.ndarray:
    """Rows ``[y0, y0 + rows)`` of the image, ``[rows, size, 2]`` uint16."""
    rng = np.random.default_rng([seed, y0])
    out = np.zeros((rows, size, 2), np.float32)
    yy = np.arange(y0, y0 + rows, dtype=np.float32)[:, None]
    near = nuclei[(nuclei[:, 0] > y0 - 40) & (nuclei[:, 0] < y0 + rows + 40)]
    for cy, cx, r, level in near:
        x0, x1 = max(0, int(cx - 3 * r)), min(size, int(cx + 3 * r) + 1)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        out[:, x0:x1, 0] += level / (1 + np.exp(np.minimum((np.sqrt(d2) - r) * 1.5, 60)))
        out[:, x0:x1, 1] += 0.35 * level * np.exp(-d2 / (2 * (2.2 * r) ** 2))
    out += 100 + rng.normal(0, 0.6, out.shape).astype(np.float32)
    return np.clip(np.round(out), 0, 4095).astype(np.uint16)


def write_sample(path: Path, size: int = 512, seed: int = 7, level: int = 22) -> None:
    """Write the sample CZI (channels C0, C1; Gray16) of ``size`` x ``size`` pixels.

    ``level``: zstd level (22, the smallest file, is slow for benchmark-sized images).
    """
    from pylibCZIrw import czi

    nuclei = _nuclei(size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = f"zstd1:ExplicitLevel={level};PreProcess=HiLoByteUnpack"
    with czi.create_czi(str(path), exist_ok=True, compression_options=options) as w:
        for y0 in range(0, size, BAND):
            rows = min(BAND, size - y0)
            data = band(size, y0, rows, nuclei, seed)
            for c in range(2):
                w.write(
                    np.ascontiguousarray(data[:, :, c : c + 1]),
                    plane={"C": c, "Z": 0, "T": 0},
                    location=(0, y0),
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--level", type=int, default=22, help="zstd level (1: fast)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parents[1] / "samples" / "nuclei.czi"
    )
    args = parser.parse_args()
    write_sample(args.out, args.size, args.seed, args.level)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
