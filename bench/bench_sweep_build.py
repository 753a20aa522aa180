"""Benchmark: a 4-tile sweep of the ~8M-parameter U-Net through ``czbuild build``.

Compares, in fresh processes (wall time and peak RSS of the largest process in the tree):

* ``sweep``: one cold ``czbuild build unet tile=256,512,768,1024`` (one worker: one TensorFlow
  start-up, one model load, one conversion specialised per tile);
* ``sweep --in-process``: the same, converting in the czbuild process itself;
* ``one process each``: four cold ``czbuild build unet tile=T`` runs, one per tile.

The U-Net comes from bench/unet.py (4 levels, 32 base filters, 1 channel in, 3 classes).
Every build runs with ``--no-verify``: this benchmark measures conversion sharing (the
recipe's ``min_overlap: 32`` is too small for this U-Net at tolerance 1e-5, so a verifying
build would fail it); bench/bench_verify_build.py measures verification.

Usage: python bench/bench_sweep_build.py [--tiles 256 512 768 1024] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from unet_project import RECIPE_TILE, write_unet_project

REPO = Path(__file__).resolve().parents[1]

# Runs one command and reports its wall time and the peak RSS of its process tree.
MEASURE = """\
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "peak_mb": peak / 1024, "rc": proc.returncode,
                  "out": proc.stdout[-2000:], "err": proc.stderr[-2000:]}))
"""


def measure(args: list[str], cwd: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "czbuild", *args]
    result = json.loads(
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    )
    if result["rc"] != 0:
        raise SystemExit(f"czbuild {' '.join(args)} failed:\n{result['out']}\n{result['err']}")
    return result


def digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.czann"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 768, 1024])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-sweep-"))
    write_unet_project(root, min_overlap=32)
    sweep = "tile=" + ",".join(map(str, args.tiles))
    rows = []

    # warm-up: the first TensorFlow start-up after boot also reads its libraries from disk
    measure(["build", "--no-verify", "unet", f"tile={args.tiles[0]}", "--out", "out-warmup"], root)
    for label, extra, out in [
        ("sweep, one czbuild process (worker)", [], "out-sweep"),
        ("sweep, one czbuild process (--in-process)", ["--in-process"], "out-inproc"),
    ]:
        shutil.rmtree(root / out, ignore_errors=True)
        r = measure(["build", "--no-verify", "unet", sweep, "--out", out, *extra], root)
        rows.append((label, r["wall"], r["peak_mb"]))
        print(f"{label}: {r['wall']:.1f} s, peak {r['peak_mb']:.0f} MB", flush=True)

    shutil.rmtree(root / "out-each", ignore_errors=True)
    walls, peaks, each = [], [], {}
    for tile in args.tiles:
        # a one-value override is a variant of its own (unet@tile=T in unet/tile=T/), except
        # for the recipe's own tile (256), which resolves to the plain variant in unet/default/
        r = measure(["build", "--no-verify", "unet", f"tile={tile}", "--out", "out-each"], root)
        folder = "default" if tile == RECIPE_TILE else f"tile={tile}"
        artifact = root / "out-each" / "unet" / folder / "unet.czann"
        each[f"unet/tile={tile}/unet.czann"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
        walls.append(r["wall"])
        peaks.append(r["peak_mb"])
        print(
            f"  tile {tile}, own process: {r['wall']:.1f} s, peak {r['peak_mb']:.0f} MB", flush=True
        )
    rows.append(("one czbuild process per tile (sum / max)", sum(walls), max(peaks)))

    same = digests(root / "out-sweep") == each == digests(root / "out-inproc")
    print()
    print("| run | wall (s) | peak RSS (MB) |")
    print("| --- | ---: | ---: |")
    for label, wall, peak in rows:
        print(f"| {label} | {wall:.1f} | {peak:.0f} |")
    print(f"\nartifacts byte-identical across the three ways: {same}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
