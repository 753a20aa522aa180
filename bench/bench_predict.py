"""Benchmark: ``czbuild predict`` on large two-channel CZIs (wall time, peak RSS, agreement).

For each size a synthetic two-channel uint16 CZI (tools/make_sample.py, fixed seed) is
written, then ``czbuild predict ARTIFACT IMAGE --channel 0`` runs in a fresh process (wall
time includes start-up; peak RSS is the child's VmHWM, read from /proc every 50 ms). With
``--compare``, the stitched class probabilities are compared with the source Keras model
(models/nuclei.py, the artifact's preprocessing applied in NumPy) run at once on a
``--crop``-pixel square from the middle of the image; only pixels further than ``--margin``
from the crop's edge count (there the crop's own border cannot reach), so the figure is what
ZEN's tiling changes against a whole-image prediction.

Build the artifacts first:

    czbuild build nuclei                                          # per-tile standardisation
    czbuild build nuclei preprocessing=none --out build-fixed     # no per-tile statistics

Usage: python bench/bench_predict.py [--sizes 4096 16384] [--artifact A] [--compare]
                                     [--no-preprocessing] [--crop 2048] [--margin 64]
                                     [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))

from make_sample import write_sample  # noqa: E402


def run_predict(artifact: Path, image: Path, out: Path, probabilities: bool) -> dict:
    args = [sys.executable, "-m", "czbuild", "predict", str(artifact), str(image)]
    args += ["--channel", "0", "--out", str(out), "-q"]
    if probabilities:
        args.append("--probabilities")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(args, env=env, stdout=out_file, stderr=err_file)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _hwm(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read().decode(), err_file.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}): {stderr}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 1024), "stdout": stdout}


def _hwm(pid: int) -> int:
    """The process's peak RSS so far (kB, /proc VmHWM of its own address space).

    Not ``wait4``'s ``ru_maxrss``: after fork + exec that also counts the parent's image at
    the fork, which is large here once the Keras comparison ran in this process.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def compare(
    artifact: Path, image: Path, probabilities: Path, crop: int, margin: int, chain_off: bool
) -> dict:
    """Max abs difference of the stitched probabilities vs the Keras model on a crop."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tifffile

    from czbuild import ops
    from czbuild.formats.reader import read_artifact
    from czbuild.images import open_image
    from czbuild.keras.sources import load_model
    from czbuild.recipe import load_variants

    art = read_artifact(artifact)
    tile = art.metadata.input_shape[0]
    variants = load_variants(["nuclei"], project_dir=REPO)
    spec = next(v.spec for v in variants if v.spec.spatial_dims[0] == tile)
    chain = () if chain_off else spec.preprocessing
    source = open_image(image, channels=[0])
    h, w = source.shape[1:3]
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    raw = source.read((0, 1), (y0, y0 + crop), (x0, x0 + crop)).astype(np.float32) / 65535.0
    source.close()
    model = load_model(str(REPO / "models" / "nuclei.py") + ":build")
    x = ops.apply_numpy(chain, raw).astype(np.float32)
    whole = np.asarray(model.predict(x, verbose=0))[0]
    with tifffile.TiffFile(probabilities) as tif:
        got = tif.series[0].asarray(out="memmap")[y0 : y0 + crop, x0 : x0 + crop]
    inner = (slice(margin, crop - margin), slice(margin, crop - margin))
    diff = np.abs(np.asarray(got)[inner] - whole[inner])
    return {
        "crop": crop,
        "margin": margin,
        "preprocessing": [op["op"] for op in chain] or ["none"],
        "max_abs_diff": float(diff.max()),
        "labels_agree": float(np.mean(np.argmax(got[inner], -1) == np.argmax(whole[inner], -1))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096])
    parser.add_argument(
        "--artifact", type=Path, default=REPO / "build" / "nuclei" / "tile=512" / "nuclei.czann"
    )
    parser.add_argument("--compare", action="store_true", help="Also compare with Keras.")
    parser.add_argument(
        "--no-preprocessing",
        action="store_true",
        help="The artifact was built with preprocessing=none (compare without the chain).",
    )
    parser.add_argument("--crop", type=int, default=2048)
    parser.add_argument("--margin", type=int, default=64)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    rows = []
    try:
        for size in args.sizes:
            image = scratch / f"cells{size}.czi"
            start = time.perf_counter()
            write_sample(image, size, level=1)
            made = time.perf_counter() - start
            out = scratch / f"cells{size}.labels.ome.tif"
            probs = args.compare and size <= 8192
            row = {"size": size, "czi_mb": round(image.stat().st_size / 2**20, 1)}
            row["make_czi_s"] = round(made, 1)
            row.update(run_predict(args.artifact, image, out, probs))
            row["labels_mb"] = round(out.stat().st_size / 2**20, 1)
            if probs:
                row["compare"] = compare(
                    args.artifact,
                    image,
                    scratch / f"cells{size}.probabilities.ome.tif",
                    args.crop,
                    args.margin,
                    args.no_preprocessing,
                )
            print(json.dumps(row), flush=True)
            rows.append(row)
            for f in scratch.glob(f"cells{size}*"):
                if args.keep is None:
                    f.unlink()
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for f in scratch.iterdir():
                shutil.move(str(f), args.keep / f.name)
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
