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
import shutil
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
        # -j 2 with --ray: two actors and two doit threads, the local pool's schedule
        ray2 = czbuild(root, "--ray", cluster.address, "-j", "2", "--out", "out-ray-j2")
    finally:
        cluster.shutdown()
    a = digests(root / "out-local")
    print("| build | artifacts | wall | byte-identical to local |")
    print(f"| local `-j 2` | {len(a)} | {local:.1f} s | |")
    for label, wall, out in (
        ("`--ray` (64 jobs in flight, 2 actors)", ray, "out-ray"),
        ("`--ray -j 2` (2 jobs in flight, 2 actors)", ray2, "out-ray-j2"),
    ):
        b = digests(root / out)
        same = a == b and len(a) == recipes * len(TILES)
        print(f"| {label} | {len(b)} | {wall:.1f} s ({(wall / local - 1) * 100:+.0f}%) | {same} |")
    shutil.rmtree(root, ignore_errors=True)


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
    shutil.rmtree(root, ignore_errors=True)


# --- the coordinator's per-artifact cost, and a simulation of large builds -------------------


def bench_coordinator(sizes: list[int]) -> tuple[float, float]:
    """Seconds per stamp write and per manifest regeneration over n stamps; returns (a, b).

    After each artifact the coordinator writes its stamp and regenerates the manifest from
    every stamp: ``a + b * n`` seconds with n stamps in the folder (fit on ``sizes``).
    """
    from czbuild.builder.fingerprint import compute_fingerprint
    from czbuild.builder.hashing import HashCache
    from czbuild.builder.manifest import write_manifest
    from czbuild.builder.stamps import ArtifactRecord, make_stamp, state_dir, write_stamp
    from support.build_fakes import make_project

    rows = []
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix="czbuild-bench-coord-"))
        variants = make_project(root / "p", {f"m{i:05d}": [32] for i in range(n)})
        out = root / "out"
        cache = HashCache.shared(state_dir(out) / "hashcache.json")
        stamps = []
        for v in variants:
            artifact = out / str(v.output)
            artifact.parent.mkdir(parents=True, exist_ok=True)
            data = f"artifact of {v.name}\n".encode()
            artifact.write_bytes(data)
            fp = compute_fingerprint(v, cache)
            sha = hashlib.sha256(data).hexdigest()
            stamps.append(make_stamp(fp, ArtifactRecord(fp.output, sha, len(data), {}), None))
        start = time.perf_counter()
        for stamp in stamps:
            write_stamp(out, stamp)
        per_stamp = (time.perf_counter() - start) / n
        write_manifest(out, cache)  # the hash cache reads every artifact once
        (out / "manifest.json").unlink()
        start = time.perf_counter()
        write_manifest(out, cache)
        manifest = time.perf_counter() - start
        rows.append((n, per_stamp, manifest))
        shutil.rmtree(root, ignore_errors=True)
        print(f"  {n} stamps: write_stamp {per_stamp * 1e3:.2f} ms each; manifest {manifest:.3f} s")
    (n0, _, m0), (n1, _, m1) = rows[0], rows[-1]
    b = (m1 - m0) / (n1 - n0) if n1 != n0 else m1 / n1
    a = statistics.mean(r[1] for r in rows) + max(0.0, m0 - b * n0)
    return a, b


def simulate(
    *,
    models: int,
    tiles: tuple[float, ...],
    load: float,
    artifact_mb: float,
    slots_per_node: int,
    a: float,
    b: float,
    bandwidth_mb: float,
    nodes: list[int],
) -> None:
    """Makespan of ``models`` x ``len(tiles)`` variants on 1..64 nodes (list scheduling).

    Each model group runs on one actor slot: ``load`` seconds, then one job per tile (its
    seconds in ``tiles``). The coordinator is one server: per finished artifact it receives
    the bytes (``artifact_mb`` at ``bandwidth_mb`` MB/s) and writes the stamp and manifest
    (``a + b * artifacts so far``); it never blocks the actors.
    """
    import heapq

    print("| nodes | slots | workers' makespan | coordinator busy | build makespan | bottleneck |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for count in nodes:
        slots = [0.0] * (count * slots_per_node)
        heapq.heapify(slots)
        finished = []
        for _ in range(models):  # groups in order, each to the slot free first
            t = heapq.heappop(slots) + load
            for seconds in tiles:
                t += seconds
                finished.append(t)
            heapq.heappush(slots, t)
        finished.sort()
        clock = busy = 0.0
        for done, at in enumerate(finished):
            cost = artifact_mb / bandwidth_mb + a + b * done
            clock = max(clock, at) + cost
            busy += cost
        workers = finished[-1]
        where = "coordinator" if clock > workers * 1.05 else "workers"
        print(
            f"| {count} | {len(slots)} | {workers / 60:.1f} min | {busy / 60:.1f} min | "
            f"{clock / 60:.1f} min | {where} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=20)
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-noop", action="store_true")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="only measure the coordinator's per-artifact cost and simulate 1,000 variants",
    )
    args = parser.parse_args()
    if args.simulate:
        print("coordinator cost per artifact:")
        a, b = bench_coordinator([100, 1000, 4000])
        print(f"  fit: {a * 1e3:.2f} ms + {b * 1e6:.1f} us x stamps in the folder")
        profiles = {
            # bench_ray.py's tiny factory: 80 jobs in 78.9 s on 2 workers (loads included)
            "tiny Keras factory, 4 tiles 32-128": dict(
                tiles=(1.9,) * 4, load=0.5, artifact_mb=0.01
            ),
            # BENCHMARKS.md: 7.8M U-Net, verified tile 256 13.4 s, tile 1024 44.2 s
            "7.8M U-Net, verified, tiles 256-1024": dict(
                tiles=(13.4, 24.0, 34.0, 44.2), load=5.0, artifact_mb=31.0
            ),
        }
        for name, profile in profiles.items():
            print(f"\n{name}: 250 models x 4 tiles = 1,000 variants, 4 slots per node, 1 Gbit/s")
            simulate(
                models=250,
                slots_per_node=4,
                a=a,
                b=b,
                bandwidth_mb=110.0,
                nodes=[1, 2, 4, 8, 16, 32, 64],
                **profile,  # type: ignore[arg-type]
            )
        return
    if not args.skip_noop:
        bench_noop(args.variants, args.repeat)
    if not args.skip_build:
        bench_build(args.recipes)


if __name__ == "__main__":
    main()
