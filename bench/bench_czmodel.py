"""Benchmark: czbuild vs ZEISS czmodel 5.1.0 on a 4-tile sweep of the 7.8M-parameter U-Net.

The side-by-side of issue 15. One seeded U-Net (bench/unet.py: 4 levels, 32 base filters, 1
channel in, 3 classes) is converted to CZANN at tiles 256, 512, 768 and 1024, three ways, each
run a fresh process with a fresh output folder:

* ``czbuild build`` -- the default, every artifact verified (one recipe sweeping the tiles);
* ``czbuild build --no-verify``;
* czmodel 5.1.0 (``DefaultConverter.convert_from_model_spec``) converting the same model at
  the same tiles in one script, in its own virtual environment (czmodel needs Keras 2:
  ``tf-keras`` with ``TF_USE_LEGACY_KERAS=1``).

The model is the same for both tools: built once with Keras 3 and saved as ``unet.keras`` (what
the recipe converts), then rebuilt with ``tf_keras`` in the czmodel environment, given the same
weights and saved as ``unet.h5`` (what czmodel converts); the script checks that both give the
same output (max abs difference below 1e-5) before timing anything. Each tool loads its model
file itself, as a user would.

Wall time and peak RSS come from the operating system (``os.wait4``: the largest resident set
of the process and the descendants it waited for, i.e. czbuild's conversion workers too); the
runs alternate (czbuild, czbuild --no-verify, czmodel, then again) so that a drifting machine
load affects all three alike, and the table gives medians and the ratios of the medians.

Set up the czmodel environment once (anywhere; the path is an argument)::

    python3 -m venv /tmp/czmodel-venv
    /tmp/czmodel-venv/bin/pip install 'czmodel[tensorflow]==5.1.0' tf-keras

Usage::

    python bench/bench_czmodel.py --czmodel-python /tmp/czmodel-venv/bin/python
        [--tiles 256 512 768 1024] [--repeat 2] [--jobs 1] [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["background", "class1", "class2"]
OVERLAP = 96

# Runs with czbuild's Python: the Keras 3 model, its weights and a probe output.
_MAKE_MODEL = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from unet import build_unet
    out = sys.argv[2]
    model = build_unet()
    model.save(f"{out}/unet.keras")
    np.savez(f"{out}/weights.npz", *model.get_weights())
    x = np.random.default_rng(0).random((1, 64, 64, 1), dtype=np.float32)
    np.savez(f"{out}/probe.npz", x=x, y=model.predict(x, verbose=0))
    print(f"{model.count_params()} parameters")
    """
)

# Runs in the czmodel environment: the same architecture in tf_keras, the same weights, .h5.
_MAKE_H5 = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tf_keras
    sys.path.insert(0, sys.argv[1])
    from unet import build_unet
    out = sys.argv[2]
    model = build_unet(keras_module=tf_keras)
    weights = np.load(f"{out}/weights.npz")
    model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    probe = np.load(f"{out}/probe.npz")
    diff = float(np.abs(model.predict(probe["x"], verbose=0) - probe["y"]).max())
    assert diff < 1e-5, f"tf_keras and Keras 3 models differ: {diff}"
    model.save(f"{out}/unet.h5")
    print(f"same model in tf_keras (max abs diff {diff:.1e})")
    """
)

# The czmodel side: one script converting the model at every tile.
_CZMODEL_SWEEP = textwrap.dedent(
    """
    import sys
    import tf_keras
    from czmodel.core.model_metadata import ModelMetadata, ModelType
    from czmodel.tensorflow.convert import DefaultConverter
    from czmodel.tensorflow.model_spec import ModelSpec

    model_file, out, overlap, *tiles = sys.argv[1:]
    model = tf_keras.models.load_model(model_file, compile=False)
    for tile in map(int, tiles):
        metadata = ModelMetadata(
            model_type=ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
            input_shape=[tile, tile, 1],
            output_shape=[tile, tile, 3],
            model_name="unet",
            classes={classes!r},
            min_overlap=[int(overlap), int(overlap)],
        )
        DefaultConverter().convert_from_model_spec(
            ModelSpec(model=model, model_metadata=metadata),
            out,
            f"unet_tile{{tile}}",
            spatial_dims=(tile, tile),
        )
    """
).format(classes=CLASSES)

_RECIPE = """\
name: unet
model:
  path: ../models/unet.keras
format: czann
tile: {first}
metadata:
  type: MultiClassSemanticSegmentation
  classes: [{classes}]
  min_overlap: [{overlap}, {overlap}]
sweep:
  tile: [{tiles}]
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MB, largest process incl. waited-for children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "peak_mb": usage.ru_maxrss / 1024, "rc": proc.returncode, "out": out}


def prepare(root: Path, czmodel_python: str, tiles: list[int]) -> None:
    """The project, the model in both forms and the czmodel script under ``root``."""
    models = root / "models"
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    models.mkdir(exist_ok=True)
    bench = str(REPO / "bench")
    for label, python, code, extra in (
        ("Keras 3 model", sys.executable, _MAKE_MODEL, {}),
        ("tf_keras model", czmodel_python, _MAKE_H5, {"TF_USE_LEGACY_KERAS": "1"}),
    ):
        r = timed([python, "-c", code, bench, str(models)], root, env={**os.environ, **extra})
        if r["rc"] != 0:
            raise SystemExit(f"{label} failed:\n{r['out'][-3000:]}")
        print(f"{label}: {r['out'].strip().splitlines()[-1]}", flush=True)
    (root / "recipes" / "unet.yaml").write_text(
        _RECIPE.format(
            first=tiles[0],
            classes=", ".join(CLASSES),
            overlap=OVERLAP,
            tiles=", ".join(map(str, tiles)),
        )
    )
    (root / "czmodel_sweep.py").write_text(_CZMODEL_SWEEP)


def runs(root: Path, czmodel_python: str, tiles: list[int], jobs: int) -> dict[str, tuple]:
    """The three commands, each as (argv, env, check of its output folder)."""
    czbuild_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    czmodel_env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    czbuild = [sys.executable, "-m", "czbuild", "build", "-j", str(jobs), "--out"]
    sweep = [czmodel_python, "czmodel_sweep.py", "models/unet.h5"]
    n = len(tiles)
    return {
        "czbuild build (verified)": (czbuild, [], czbuild_env, n),
        "czbuild build --no-verify": (czbuild, ["--no-verify"], czbuild_env, n),
        "czmodel 5.1.0, one script": (sweep, [str(OVERLAP), *map(str, tiles)], czmodel_env, n),
    }


def run_once(root: Path, label: str, spec: tuple, index: int) -> dict:
    cmd, tail, env, expected = spec
    out = root / f"out-{index}"
    shutil.rmtree(out, ignore_errors=True)
    r = timed([*cmd, str(out), *tail], root, env=env)
    built = sorted(out.rglob("*.czann"))
    if r["rc"] != 0 or len(built) != expected:
        raise SystemExit(
            f"{label}: exit code {r['rc']}, {len(built)} of {expected} .czann files:\n"
            f"{r['out'][-3000:]}"
        )
    shutil.rmtree(out, ignore_errors=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--czmodel-python", required=True, help="python of the czmodel venv")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 768, 1024])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each command")
    parser.add_argument("--jobs", type=int, default=1, help="czbuild -j")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", type=Path, default=None, help="project folder to (re)use")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-czmodel-"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "czmodel_sweep.py").exists():
        prepare(root, args.czmodel_python, args.tiles)
    versions = subprocess.run(
        [
            args.czmodel_python,
            "-c",
            "from importlib.metadata import version as v; "
            "print(*(f'{p} {v(p)}' for p in ('czmodel', 'tensorflow', 'tf-keras', 'tf2onnx')), "
            "sep=', ')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print(f"czmodel side: {versions}")
    print(f"tiles {args.tiles}, czbuild -j {args.jobs}, {args.repeat} runs each", flush=True)

    commands = runs(root, args.czmodel_python, args.tiles, args.jobs)
    figures: dict[str, list[dict]] = {label: [] for label in commands}
    for i in range(args.repeat):
        for j, (label, spec) in enumerate(commands.items()):
            r = run_once(root, label, spec, j)
            figures[label].append({"wall": r["wall"], "peak_mb": r["peak_mb"]})
            print(f"  run {i + 1}: {label}: {r['wall']:.1f} s, {r['peak_mb']:.0f} MB", flush=True)
    print(f"load after the runs: {os.getloadavg()}")

    med = {
        label: (
            statistics.median(f["wall"] for f in runs_),
            statistics.median(f["peak_mb"] for f in runs_),
        )
        for label, runs_ in figures.items()
    }
    reference = med["czmodel 5.1.0, one script"]
    print()
    print("| run | wall (s), median | peak RSS (MB), median | wall / czmodel | peak / czmodel |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, (wall, peak) in med.items():
        print(
            f"| {label} | {wall:.1f} | {peak:.0f} | "
            f"{wall / reference[0]:.2f}x | {peak / reference[1]:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "versions": versions}, indent=2))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
