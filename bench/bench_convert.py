"""Conversion benchmark: a tile sweep through czbuild vs per-tile SavedModel round trips.

Workload: the seeded U-Net of ``bench/unet.py`` (4 levels, 32 base filters, 1 input channel,
3 classes, ~7.8M parameters) converted to CZANN 2.1.0 (opset 18) at several tile sizes.

* ``czbuild``: ONE process builds the model once and converts every tile through one
  :class:`czbuild.keras.converter.ModelConverter` and :func:`czbuild.convert.convert`
  (tiling-invariant model: one undefined-size conversion, specialised per tile).
* ``baseline``: what converting each tile separately through a SavedModel round trip costs
  (the reference tool's way): per tile, a fresh process rebuilds the model at that tile,
  saves a SavedModel, loads it back, runs tf2onnx on the loaded SavedModel and packages
  the ONNX (with czbuild's writer, so packaging costs the same).

Every run is its own subprocess; wall time is measured around it (interpreter start and
imports included) and peak RSS is the child's own ``VmHWM`` from ``/proc`` read at its end,
cross-checked with ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the maximum over the children
finished so far).
Usage::

    python bench/bench_convert.py                      # tiles 256 512 768 1024
    python bench/bench_convert.py --tiles 256 512 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TILES = (256, 512, 768, 1024)
OPSET = 18
CLASSES = ("Background", "Cells", "Nuclei")


# --- children ----------------------------------------------------------------------------------


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.path.insert(0, str(REPO))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _metadata() -> Any:
    from czbuild.formats import CzannMetadata

    return CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=CLASSES,
        model_name="U-Net",
        format_version="2.1.0",
    )


def child_czbuild(tiles: list[int], out: Path) -> dict[str, Any]:
    """One process: build once, convert every tile with one ModelConverter."""
    start = time.perf_counter()
    from bench.unet import build_unet
    from czbuild.convert import ConversionRequest, convert
    from czbuild.keras.converter import ModelConverter

    model = build_unet()
    converter = ModelConverter(model)
    per_tile = {}
    for tile in tiles:
        t0 = time.perf_counter()
        request = ConversionRequest(
            source=model, metadata=_metadata(), spatial_dims=(tile, tile), opset=OPSET
        )
        result = convert(request, out / f"czbuild-{tile}.czann", converter=converter)
        per_tile[tile] = {"seconds": time.perf_counter() - t0, "route": result.route}
    return {"seconds_in_process": time.perf_counter() - start, "per_tile": per_tile}


def child_ablation(mode: str, tiles: list[int], out: Path) -> dict[str, Any]:
    """Ablations of the czbuild run, same process layout.

    ``fixed``: convert every tile at fixed dims (no undefined-size conversion + specialisation).
    ``no-compaction``: the normal sweep with tf2onnx's node protobufs left uncompacted.
    """
    from czbuild.keras import onnx_export

    if mode == "no-compaction":
        onnx_export._compact_nodes = lambda graph: None
        return child_czbuild(tiles, out)
    start = time.perf_counter()
    from dataclasses import replace

    from bench.unet import build_unet
    from czbuild.formats import write_czann
    from czbuild.keras.wrap import wrap_model

    model = build_unet()
    per_tile = {}
    for tile in tiles:
        t0 = time.perf_counter()
        wrapped = wrap_model(model, spatial_dims=(tile, tile))
        payload = onnx_export.export_onnx(wrapped, opset=OPSET, input_shape=(None, tile, tile, 1))
        metadata = replace(_metadata(), input_shape=(tile, tile, 1), output_shape=(tile, tile, 3))
        write_czann(out / f"fixed-{tile}.czann", metadata, payload)
        per_tile[tile] = {"seconds": time.perf_counter() - t0, "route": "fixed"}
    return {"seconds_in_process": time.perf_counter() - start, "per_tile": per_tile}


def child_baseline(tile: int, out: Path) -> dict[str, Any]:
    """One process, one tile: rebuild -> SavedModel -> load -> tf2onnx -> package."""
    start = time.perf_counter()
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    from bench.unet import build_unet
    from czbuild.formats import write_czann

    model = build_unet(tile=tile)
    spec = tf.TensorSpec((None, tile, tile, 1), tf.float32, name="input")
    serve = tf.function(lambda x: {"output": model(x, training=False)}, input_signature=[spec])
    module = tf.Module()
    module.model = model
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": serve})
        graph_def, inputs, outputs = tf_loader.from_saved_model(
            tmp, None, None, signatures=["serving_default"]
        )
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, opset=OPSET
        )
    metadata = _metadata()
    from dataclasses import replace

    metadata = replace(metadata, input_shape=(tile, tile, 1), output_shape=(tile, tile, 3))
    write_czann(out / f"baseline-{tile}.czann", metadata, proto.SerializeToString())
    return {"seconds_in_process": time.perf_counter() - start}


def _child_main(argv: list[str]) -> None:
    _quiet()
    mode, out = argv[0], Path(argv[1])
    tiles = [int(t) for t in argv[2:]]
    if mode == "czbuild":
        report = child_czbuild(tiles, out)
    elif mode in ("fixed", "no-compaction"):
        report = child_ablation(mode, tiles, out)
    else:
        report = child_baseline(tiles[0], out)
    report["peak_rss_mb_self"] = _peak_rss_mb()
    print("RESULT " + json.dumps(report))


# --- parent --------------------------------------------------------------------------------------


def run_child(args: list[str]) -> dict[str, Any]:
    """Run this file as a child; wall time, peak RSS (wait4) and the child's own report."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{stderr.decode()[-3000:]}")
    line = [ln for ln in stdout.decode().splitlines() if ln.startswith("RESULT ")][-1]
    report = json.loads(line[len("RESULT ") :])
    report["wall_seconds"] = wall
    report["peak_rss_mb"] = report["peak_rss_mb_self"]
    report["ru_maxrss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


def machine() -> dict[str, Any]:
    """CPU model, core count, RAM and the toolchain versions."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(ln.split()[1])
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    versions = {}
    for package in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "protobuf"):
        try:
            from importlib.metadata import version

            versions[package] = version(package if package != "tensorflow" else "tensorflow-cpu")
        except Exception:
            try:
                versions[package] = version(package)
            except Exception:
                versions[package] = "?"
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def compare_outputs(out: Path, tile: int) -> float:
    """Max abs difference of the two artifacts at ``tile`` on one seeded input (onnxruntime)."""
    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, str(REPO))
    from czbuild.formats import read_artifact

    x = np.random.default_rng(0).random((1, tile, tile, 1), dtype=np.float32)
    outs = []
    for name in (f"czbuild-{tile}.czann", f"baseline-{tile}.czann"):
        session = ort.InferenceSession(
            read_artifact(out / name).model_bytes, providers=["CPUExecutionProvider"]
        )
        outs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    return float(np.max(np.abs(outs[0] - outs[1])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=list(DEFAULT_TILES))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also run czbuild with the fixed route only, and without the "
        "tf2onnx protobuf compaction",
    )
    args = parser.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="czbuild-bench-") as tmp:
        out = Path(tmp)
        sweep = run_child(["czbuild", str(out), *map(str, args.tiles)])
        baseline = {t: run_child(["baseline", str(out), str(t)]) for t in args.tiles}
        max_diff = compare_outputs(out, args.tiles[0])
        ablations = {}
        if args.ablations:
            for mode in ("fixed", "no-compaction"):
                ablations[mode] = run_child([mode, str(out), *map(str, args.tiles)])
    info["loadavg_end"] = os.getloadavg()
    base_wall = sum(r["wall_seconds"] for r in baseline.values())
    base_peak = max(r["peak_rss_mb"] for r in baseline.values())
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "tiles": args.tiles,
        "czbuild": sweep,
        "baseline": baseline,
        "ablations": ablations,
        "summary": {
            "czbuild_wall_s": sweep["wall_seconds"],
            "baseline_wall_s": base_wall,
            "time_ratio": sweep["wall_seconds"] / base_wall,
            "czbuild_peak_rss_mb": sweep["peak_rss_mb"],
            "baseline_peak_rss_mb": base_peak,
            "rss_reduction": 1 - sweep["peak_rss_mb"] / base_peak,
            "max_abs_diff_czbuild_vs_baseline": max_diff,
        },
    }
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def render(results: dict[str, Any]) -> str:
    """A Markdown table of the results."""
    s = results["summary"]
    lines = [
        "| run | wall time (s) | peak RSS (MB) |",
        "| --- | ---: | ---: |",
        (
            f"| czbuild, one process, tiles {', '.join(map(str, results['tiles']))} | "
            f"{s['czbuild_wall_s']:.1f} | {s['czbuild_peak_rss_mb']:.0f} |"
        ),
    ]
    for tile, r in results["baseline"].items():
        lines.append(
            f"| baseline, tile {tile} | {r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    lines.append(
        f"| baseline, all tiles (sum of times, max of peaks) | {s['baseline_wall_s']:.1f} "
        f"| {s['baseline_peak_rss_mb']:.0f} |"
    )
    for mode, r in results.get("ablations", {}).items():
        lines.append(
            f"| ablation: czbuild {mode}, one process | {r['wall_seconds']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    per_tile = ", ".join(
        f"{t}: {v['seconds']:.2f} s ({v['route']})"
        for t, v in results["czbuild"]["per_tile"].items()
    )
    lines += [
        "",
        f"czbuild time per tile inside the process: {per_tile}",
        (
            f"time ratio czbuild/baseline: {s['time_ratio']:.2f} (goal < 0.5); "
            f"peak RSS reduction: {100 * s['rss_reduction']:.0f}% (goal >= 25%); "
            f"max |czbuild - baseline| output at tile {results['tiles'][0]}: "
            f"{s['max_abs_diff_czbuild_vs_baseline']:.1e}"
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
    else:
        sys.exit(main())
