"""Benchmark: builds on a local two-node Ray cluster (``czbuild build --ray``) vs local ``-j 2``.

Two measurements:

* ``build``: 20 recipes x 4 tiles (32, 64, 96, 128) = 80 verified artifacts. Each recipe has
  its own tiny seeded Keras factory (20 model groups, so the work can spread), written by this
  script. A cold ``czbuild build -j 2`` (two local worker processes) against a cold
  ``czbuild build --ray ADDRESS`` on a ``ray.cluster_utils.Cluster`` with two nodes of one
  CPU each on this machine (the cluster is started before timing; the Ray build's wall time
  includes connecting, shipping czbuild's code and the inputs, and starting the actors).
  Both builds run in fresh processes; the artifacts must be byte-identical.
* ``noop``: the coordinator's cost of a no-op build of N (default 10,000) fake variants
  (``tests/support/build_fakes.make_variant``; no recipes to compose) whose stamps and
  artifacts are written directly (a real first build rewrites the manifest after every
  artifact: quadratic in N). ``build(..., BuildOptions(ray=...))`` with everything up to date
  never connects to Ray; timed in this process, first run (the hash cache reads every
  artifact) and then steady state.

Usage: python bench/bench_ray.py [--recipes 20] [--variants 10000] [--skip-build] [--skip-noop]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

TILES = (32, 64, 96, 128)

FACTORY = """\
def build():
    import keras

    keras.utils.set_random_seed({seed})
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""

RECIPE = """\
name: {name}
model:
  factory: ../models/{name}.py:build
format: czann
tile: 32
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [8, 8]
  license: ../LICENSE
sweep:
  tile: [{tiles}]
"""


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def write_project(root: Path, recipes: int) -> None:
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "LICENSE").write_text("MIT License\n")
    for i in range(recipes):
        name = f"r{i:02d}"
        (root / "models" / f"{name}.py").write_text(FACTORY.format(seed=i))
        (root / "recipes" / f"{name}.yaml").write_text(
            RECIPE.format(name=name, tiles=", ".join(map(str, TILES)))
        )


def czbuild(root: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "czbuild", "build", *args],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"czbuild build {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall


def digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.czann"))
    }


def bench_build(recipes: int) -> None:
    from ray.cluster_utils import Cluster

    root = Path(tempfile.mkdtemp(prefix="czbuild-bench-ray-"))
    write_project(root, recipes)
    os.environ["PYTHONPATH"] = env()["PYTHONPATH"]
    store = 200 * 1024**2
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, object_store_memory=store)
    try:
        local = czbuild(root, "-j", "2", "--out", "out-local")
        ray = czbuild(root, "--ray", cluster.address, "--out", "out-ray")
    finally:
        cluster.shutdown()
    a, b = digests(root / "out-local"), digests(root / "out-ray")
    same = a == b and len(a) == recipes * len(TILES)
    print(f"project: {root}")
    print("| build | artifacts | wall |")
    print(f"| local `-j 2` | {len(a)} | {local:.1f} s |")
    print(
        f"| `--ray` (2 nodes x 1 CPU) | {len(b)} | {ray:.1f} s ({(ray / local - 1) * 100:+.0f}%) |"
    )
    print(f"byte-identical: {same}")


def bench_noop(n: int, repeat: int) -> None:
    from czbuild.builder import BuildOptions, build
    from czbuild.builder.fingerprint import compute_fingerprint
    from czbuild.builder.hashing import HashCache
    from czbuild.builder.manifest import write_manifest
    from czbuild.builder.stamps import ArtifactRecord, make_stamp, state_dir, write_stamp
    from support.build_fakes import make_project

    root = Path(tempfile.mkdtemp(prefix="czbuild-bench-ray-noop-"))
    groups = max(1, n // 4)
    per = {f"m{i:05d}": list(TILES[: n // groups]) for i in range(groups)}
    variants = make_project(root / "p", per)[:n]
    out = root / "out"
    cache = HashCache.shared(state_dir(out) / "hashcache.json")
    start = time.perf_counter()
    for v in variants:
        artifact = out / str(v.output)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        data = f"artifact of {v.name}\n".encode()
        artifact.write_bytes(data)
        fp = compute_fingerprint(v, cache)
        record = ArtifactRecord(
            path=fp.output, sha256=hashlib.sha256(data).hexdigest(), size=len(data), members={}
        )
        write_stamp(out, make_stamp(fp, record, None))
    write_manifest(out, cache)
    cache.save()
    setup = time.perf_counter() - start
    time.sleep(2.1)  # out of the hash cache's racy window
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        report = build(
            variants,
            BuildOptions(out_dir=out, ray="local", verify=False),
            out=io.StringIO(),
        )
        times.append(time.perf_counter() - start)
        assert report.ok and not report.summary.built, report.summary.failed
    import ray

    print(f"no-op build of {len(variants)} variants (setup {setup:.1f} s):")
    print(
        f"  first {times[0]:.2f} s; then median {statistics.median(times[1:] or times):.2f} s "
        f"(min {min(times[1:] or times):.2f}); Ray started: {ray.is_initialized()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=20)
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-noop", action="store_true")
    args = parser.parse_args()
    if not args.skip_noop:
        bench_noop(args.variants, args.repeat)
    if not args.skip_build:
        bench_build(args.recipes)


if __name__ == "__main__":
    main()
