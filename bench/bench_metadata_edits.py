"""Benchmark: a class rename and a re-save of an unchanged model on a built 4-variant sweep.

Generates a temporary project: one recipe converting a tiny seeded Keras model saved as
``models/tiny.keras``, swept over tiles 32/64/96/128 (4 artifacts), builds it once, then times
``czbuild build`` in a fresh process (wall time includes Python start-up) after

* **a class rename** (``classes: [bg, fg]`` -> ``[background, fg]`` and back, alternately):
  every variant is rebuilt from the payload cache; the run must report 4 built, and the probe
  reports whether TensorFlow, onnx or onnxruntime were imported by the build process and
  whether a conversion worker was started;
* **a re-save of the unchanged model** (loaded and saved again with Keras: new bytes, new
  ``metadata.json`` date): nothing may be rebuilt and ``czbuild.lock`` must stay byte-identical.

Usage: python bench/bench_metadata_edits.py [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TILES = (32, 64, 96, 128)

_MODEL = textwrap.dedent(
    """
    import sys
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    keras.Model(inputs, outputs).save(sys.argv[1])
    """
)
_RESAVE = "import sys, keras; keras.models.load_model(sys.argv[1]).save(sys.argv[1])"

_RECIPE = """\
name: r00
model:
  path: ../models/tiny.keras
format: czann
tile: 32
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [8, 8]
sweep:
  tile: [{tiles}]
"""

# `czbuild ARGS` in this process; afterwards: which heavy modules it imported, and whether it
# started a conversion worker.
PROBE = textwrap.dedent(
    """
    import sys
    from czbuild.builder import pool
    spawned = []
    original = pool.WorkerPool._spawn
    def spawn(self):
        spawned.append(1)
        return original(self)
    pool.WorkerPool._spawn = spawn
    from czbuild.cli import main
    try:
        rc = main(sys.argv[1:])
    except SystemExit as exc:
        rc = exc.code
    heavy = [m for m in ("tensorflow", "keras", "onnx", "onnxruntime") if m in sys.modules]
    sys.stderr.write(f"PROBE imported={heavy} workers={len(spawned)}\\n")
    sys.exit(rc)
    """
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }


def czbuild(args: list[str], cwd: Path) -> tuple[float, str, str]:
    """Run ``czbuild ARGS`` in a fresh process: wall seconds, the summary line, the probe line."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"czbuild {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    summary = next(ln for ln in proc.stdout.splitlines() if " built, " in ln)
    probe = next(ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE"))
    return wall, summary, probe


def _python(code: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="renames (and re-saves) timed")
    parser.add_argument("--keep", type=Path, default=None, help="project folder to (re)use")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-edits-"))
    model = root / "models" / "tiny.keras"
    recipe = root / "recipes" / "r00.yaml"
    if not recipe.exists():
        recipe.parent.mkdir(parents=True, exist_ok=True)
        model.parent.mkdir(parents=True, exist_ok=True)
        _python(_MODEL, str(model))
        recipe.write_text(_RECIPE.format(tiles=", ".join(map(str, TILES))))
    print(f"project: {root} (1 recipe x {len(TILES)} tiles); load {os.getloadavg()}")
    wall, summary, _ = czbuild(["build"], root)
    print(f"first build: {wall:.1f} s  [{summary}]")
    time.sleep(2.5)  # let fresh artifacts leave the hash cache's racy window

    renames = []
    for i in range(args.repeat):
        old, new = (
            ("[bg, fg]", "[background, fg]") if i % 2 == 0 else ("[background, fg]", "[bg, fg]")
        )
        recipe.write_text(recipe.read_text().replace(f"classes: {old}", f"classes: {new}"))
        wall, summary, probe = czbuild(["build"], root)
        assert f"{len(TILES)} built, 0 up to date" in summary, summary
        renames.append(wall)
        print(f"class rename {i + 1}: {wall:.2f} s  [{summary}] {probe}")
    print(
        f"class rename: median {statistics.median(renames):.2f} s, min {min(renames):.2f}, "
        f"max {max(renames):.2f} over {len(renames)} runs"
    )
    time.sleep(2.5)

    lock = root / "czbuild.lock"
    resaves = []
    for i in range(args.repeat):
        before, lock_before = _sha(model), _sha(lock)
        time.sleep(1.1)  # a new mtime and save date
        _python(_RESAVE, str(model))
        assert _sha(model) != before, "the re-save wrote the same bytes"
        wall, summary, probe = czbuild(["build"], root)
        assert f"0 built, {len(TILES)} up to date" in summary, summary
        assert _sha(lock) == lock_before, "czbuild.lock changed"
        resaves.append(wall)
        print(f"re-save {i + 1}: {wall:.2f} s  [{summary}] lock unchanged; {probe}")
    print(
        f"re-save of the unchanged model: median {statistics.median(resaves):.2f} s "
        f"(nothing rebuilt, czbuild.lock unchanged); load {os.getloadavg()}"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
