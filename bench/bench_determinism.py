"""Determinism benchmark: N fresh-process tf2onnx conversions of one undefined-size model.

Workload: the bundled ``denoise`` model (``models/denoise.py``: two seeded 3x3 convolutions,
1 channel in and out, undefined height/width) converted with undefined H/W at opset 12 --
the conversion behind every ``specialized`` tile of that recipe. Each run is a fresh
``python`` process (default, random ``PYTHONHASHSEED``) that builds the model, converts it
once with czbuild's tf2onnx driver (``onnx_export._tf2onnx_convert``, no retry, no rank
check), canonicalises the result and prints the sha256 of the bytes and the output rank the
graph declares.

Variants:

* ``before``: tf2onnx's own node ordering (``_stable_node_order`` replaced by a no-op), i.e.
  the conversion as czbuild ran it before the fix, when ``export_onnx`` retried up to 6 times;
* ``after``: the code as it is (tf2onnx's node list kept in a stable order).

Usage::

    nice -n 10 python bench/bench_determinism.py --runs 200 --variant both --json det.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OPSET = 12


def _child(variant: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "models"))
    import denoise

    from czbuild.keras import onnx_export
    from czbuild.onnx_graph.canonical import canonicalize_onnx

    if variant == "before":
        onnx_export._stable_node_order = contextlib.nullcontext  # type: ignore[assignment]
    model = denoise.build()
    start = time.perf_counter()
    proto = onnx_export._tf2onnx_convert(model, (None, None, None, 1), OPSET)
    seconds = time.perf_counter() - start
    data = canonicalize_onnx(proto).SerializeToString(deterministic=True)
    print(
        json.dumps(
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "rank": onnx_export._output_rank(proto),
                "nodes": [n.op_type for n in proto.graph.node],
                "seconds": round(seconds, 3),
            }
        )
    )


def _run(variant: str, runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONHASHSEED", None)
    results = []
    start = time.perf_counter()
    for i in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", variant],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if (i + 1) % 25 == 0:
            print(f"  {variant}: {i + 1}/{runs}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - start
    by_sha = collections.Counter(r["sha256"] for r in results)
    ranks = {r["sha256"]: r["rank"] for r in results}
    nodes = {r["sha256"]: r["nodes"] for r in results}
    return {
        "variant": variant,
        "runs": runs,
        "distinct": len(by_sha),
        "outputs": [
            {"sha256": sha, "count": n, "rank": ranks[sha], "ops": nodes[sha]}
            for sha, n in by_sha.most_common()
        ],
        "median_conversion_s": sorted(r["seconds"] for r in results)[runs // 2],
        "wall_s": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--variant", choices=("before", "after", "both"), default="both")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0
    variants = ("before", "after") if args.variant == "both" else (args.variant,)
    report = {
        "machine": {
            "python": platform.python_version(),
            "nproc": os.cpu_count(),
            "load_avg": os.getloadavg(),
        },
        "results": [_run(v, args.runs) for v in variants],
    }
    for result in report["results"]:
        print(
            f"{result['variant']}: {result['runs']} runs, {result['distinct']} distinct "
            f"output(s), median conversion {result['median_conversion_s']} s"
        )
        for out in result["outputs"]:
            print(f"  {out['count']:4d} x {out['sha256'][:16]} rank {out['rank']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
