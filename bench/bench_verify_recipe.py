"""Benchmark: ``czbuild verify --recipe`` on a DeepLabV3-sized model (RGB, tile 512).

The hand-built ~13M-parameter DeepLabV3 of ``bench/deeplab.py`` (ResNet-style backbone,
ASPP with dilations 6/12/18 and a global-pooling branch) is converted once with
``--no-verify``; then ``czbuild verify ARTIFACT --recipe deeplab --json`` runs in a fresh
process for each czbuild checkout given with ``--root`` (for example the main branch before a
change and the working tree after it), each with a watchdog that kills the process tree above
``--memory-limit-gb``. Wall time includes start-up and imports; peak RSS is the largest
process of the tree, sampled every 0.2 s from /proc.

The last checkout's peak must stay under ``--max-peak-mb`` (default 2048 MB): the benchmark
exits 1 otherwise.

Usage: python bench/bench_verify_recipe.py [--root LABEL=PATH ...] [--tile 512]
                                          [--memory-limit-gb 12] [--max-peak-mb 2048]
                                          [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench_verify_build import measure_tree

REPO = Path(__file__).resolve().parents[1]

_FACTORY = f"""\
import sys

sys.path.insert(0, {str(REPO / "bench")!r})
from deeplab import build_deeplab  # noqa: E402


def build():
    return build_deeplab()
"""

_RECIPE = """\
name: deeplab
model:
  factory: ../models/deeplab_factory.py:build
format: czann
tile: {tile}
metadata:
  type: MultiClassSemanticSegmentation
  classes: [background, class1, class2]
  min_overlap: [64, 64]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", default=None, help="LABEL=PATH of a checkout")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--memory-limit-gb", type=float, default=12.0)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument(
        "--max-peak-mb",
        type=float,
        default=2048.0,
        help="Fail (exit 1) when the last checkout's verify peaks above this (bounded memory).",
    )
    args = parser.parse_args()
    roots = [r.split("=", 1) for r in (args.root or [f"this checkout={REPO}"])]
    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-deeplab-"))
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "deeplab_factory.py").write_text(_FACTORY)
    (root / "recipes" / "deeplab.yaml").write_text(_RECIPE.format(tile=args.tile))
    built = measure_tree(
        ["build", "deeplab", "--out", "out", "--no-verify"], root, args.memory_limit_gb, REPO
    )
    artifacts = sorted((root / "out").rglob("*.czann"))
    print(f"build --no-verify: {built['wall']:.1f} s, {built['peak_mb']:.0f} MB, rc {built['rc']}")
    if not artifacts:
        print(built["out"])
        raise SystemExit(1)
    rows = []
    for label, path in roots:
        r = measure_tree(
            ["verify", str(artifacts[0]), "--recipe", "deeplab", "--json"],
            root,
            args.memory_limit_gb,
            Path(path),
        )
        verdict = "killed" if r["killed"] else f"rc {r['rc']}"
        try:
            report = json.loads(r["full"][r["full"].index("\n{") :])
            tiling = {c["name"]: c for c in report["checks"] if c["name"].startswith("tiling")}
            seams = tiling.get("tiling.seams", {})
            verdict += f"; tiling.seams {seams.get('status')}: {seams.get('message', '')[:400]}"
        except (ValueError, KeyError):
            verdict += "; " + r["out"][-400:].replace("\n", " ")
        rows.append((label, r["wall"], r["peak_mb"], verdict))
        print(f"{label}: {r['wall']:.1f} s, {r['peak_mb']:.0f} MB, {verdict}", flush=True)
    print()
    print("| czbuild | wall (s) | peak RSS (MB) | outcome |")
    print("| --- | ---: | ---: | --- |")
    for label, wall, peak, verdict in rows:
        print(f"| {label} | {wall:.1f} | {peak:.0f} | {verdict} |")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    os.sync()
    label, _, peak, _ = rows[-1]
    if peak > args.max_peak_mb:
        raise SystemExit(f"{label}: peak RSS {peak:.0f} MB above --max-peak-mb {args.max_peak_mb}")
    print(f"{label}: peak RSS {peak:.0f} MB within --max-peak-mb {args.max_peak_mb:.0f}")


if __name__ == "__main__":
    main()
