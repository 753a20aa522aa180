"""Benchmark: a no-op ``czbuild build`` of 20 recipes x 4 tile variants (80 artifacts).

Generates a temporary project (a tiny Keras factory model, 20 recipes sweeping tile
32/64/96/128), builds it once for real, then times ``czbuild build`` when everything is up to
date, each in a fresh process (wall time includes Python start-up). Also reports whether
TensorFlow was imported by the no-op build, the no-op time after a comment-only recipe edit
(the variant cache misses and Hydra composes all 20 recipes again), and ``czbuild status``.

Usage: python bench/bench_noop.py [--recipes 20] [--repeat 7] [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.build_fakes import make_recipe_project  # noqa: E402  (the one tiny-project writer)

TILES = (32, 64, 96, 128)

PROBE = (
    "import sys; from czbuild.cli import main; rc = main(sys.argv[1:]); "
    "sys.stderr.write('TF-IMPORTED\\n' if 'tensorflow' in sys.modules else 'NO-TF\\n'); "
    "sys.exit(rc)"
)


def run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"czbuild {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="project folder to (re)use")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-noop-"))
    if not (root / "recipes").exists():
        make_recipe_project(root, n_recipes=args.recipes, tiles=TILES)
    n = args.recipes * len(TILES)
    print(f"project: {root} ({args.recipes} recipes x {len(TILES)} tiles = {n} artifacts)")

    wall, proc = run(["build", "-j", str(args.jobs)], root)
    print(f"cold build (-j {args.jobs}): {wall:.1f} s  [{proc.stdout.strip().splitlines()[-1]}]")
    time.sleep(2.5)  # let fresh artifacts leave the hash cache's racy window

    first, proc = run(["build"], root)
    assert f"0 built, {n} up to date" in proc.stdout, proc.stdout
    times = []
    for _ in range(args.repeat):
        wall, proc = run(["build"], root)
        times.append(wall)
        assert f"0 built, {n} up to date" in proc.stdout, proc.stdout
    tf = "TF-IMPORTED" in proc.stderr
    print(f"no-op build, first after the build: {first:.3f} s")
    print(
        f"no-op build, steady: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs; "
        f"tensorflow imported: {tf}"
    )

    status_times = [run(["status"], root)[0] for _ in range(3)]
    print(f"czbuild status: median {statistics.median(status_times):.3f} s")

    recipe = root / "recipes" / "r00.yaml"
    recipe.write_text(recipe.read_text().replace("# r00: benchmark", "# r00: edited benchmark"))
    wall, proc = run(["build"], root)
    assert f"0 built, {n} up to date" in proc.stdout, proc.stdout
    print(f"no-op build after a comment-only edit (recompose all): {wall:.3f} s")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
