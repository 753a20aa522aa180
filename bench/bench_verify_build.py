"""Benchmark: what verification costs inside ``czbuild build`` (wall time and peak RSS).

Each row is one cold ``czbuild build`` in a fresh process and a fresh output folder; peak RSS
is that of the largest process in the tree (the conversion worker, which also verifies).

* ``examples``: the bundled recipes (denoise, legacy_seed, nuclei x 3 tiles: 5 artifacts),
  copied to a temporary project: ``--no-verify``; the default (bounded) verification;
  verification without the tiling checks; and the unbounded checks ``czbuild verify --recipe``
  runs (seams on the artifact's own tile, receptive field, minimal-overlap search).
* ``unet``: the ~7.8M-parameter U-Net of bench/unet.py at one tile size (default 1024) with a
  passing ``min_overlap`` (96): ``--no-verify``; default; no tiling checks; a declared overlap
  that is too small (32: the seam check fails and the overlap analysis runs, on the proxy
  tile); and, per ``--unbounded-tiles``, the seam check on the artifact's own tile (no proxy).
  A watchdog kills a run whose process tree exceeds ``--memory-limit-gb`` and reports it.

With ``--ab N`` only the first two U-Net rows run, alternately N times each, and the table
gives their medians and the ratio verified / unverified (issue 15's first goal).

Peak RSS is the larger of the kernel's figure (``os.wait4``: the largest process the build
waited for) and the process-tree sampling.

Usage: python bench/bench_verify_build.py [--unet-tile 1024] [--unbounded-tiles 256 512 1024]
                                          [--memory-limit-gb 12] [--skip-examples]
                                          [--skip-unet] [--only-unbounded] [--ab N]
                                          [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unet_project import write_unet_project

REPO = Path(__file__).resolve().parents[1]


def _tree_rss(root: int) -> int:
    """Largest RSS (bytes) of ``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    best, todo = 0, [root]
    while todo:
        pid = todo.pop()
        best = max(best, rss.get(pid, 0))
        todo.extend(children.get(pid, []))
    return best


def measure(args: list[str], cwd: Path, limit_gb: float) -> dict:
    """Run ``czbuild ARGS``; wall time, peak RSS of the tree, exit code, output tail."""
    return measure_tree(args, cwd, limit_gb, REPO)


def measure_tree(args: list[str], cwd: Path, limit_gb: float, czbuild_root: Path) -> dict:
    """Run ``czbuild ARGS`` from the checkout ``czbuild_root``; see :func:`measure`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(czbuild_root), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "czbuild", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    peak, killed, maxrss = 0, False, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            # the kernel's figure: the largest process among it and the children it waited for
            proc.returncode = os.waitstatus_to_exitcode(status)
            maxrss = usage.ru_maxrss * 1024
            break
        peak = max(peak, _tree_rss(proc.pid))
        if peak > limit_gb * 1024**3 and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out, _ = proc.communicate()
    return {
        "wall": wall,
        "peak_mb": max(peak, maxrss) / 1024**2,
        "rc": proc.returncode,
        "killed": killed,
        "out": out[-3000:],
        "full": out,
    }


def _row(label: str, r: dict, limit_gb: float) -> tuple[str, str, str, str]:
    if r["killed"]:
        return (label, f"> {r['wall']:.0f} (killed)", f"> {limit_gb * 1024:.0f}", "killed")
    lines = [ln for ln in r["out"].splitlines() if ln.startswith("czbuild: ") and "built" in ln]
    return (
        label,
        f"{r['wall']:.1f}",
        f"{r['peak_mb']:.0f}",
        lines[-1] if lines else f"rc {r['rc']}",
    )


def examples(root: Path, limit_gb: float) -> list[tuple[str, str, str, str]]:
    for part in ("recipes", "configs", "models"):
        shutil.copytree(REPO / part, root / part)
    runs = [
        ("examples, --no-verify", ["--no-verify"]),
        ("examples, verified (default)", []),
        ("examples, verified, no tiling checks", ["+verify.tiling=false"]),
        (
            "examples, unbounded (own tile + overlap analysis)",
            ["+verify.tiling_max_tile=0", "+verify.overlap_analysis=true"],
        ),
    ]
    measure(["build", "--out", "out-warmup", "--no-verify"], root, limit_gb)
    rows = []
    for i, (label, extra) in enumerate(runs):
        r = measure(["build", "--out", f"out-{i}", *extra], root, limit_gb)
        rows.append(_row(label, r, limit_gb))
        print(" | ".join(rows[-1]), flush=True)
        if r["rc"] != 0:
            print(r["out"], flush=True)
    return rows


def unet(
    root: Path, tile: int, unbounded: list[int], limit_gb: float, only_unbounded: bool = False
) -> list[tuple[str, str, str, str]]:
    write_unet_project(root, min_overlap=96)
    t = f"tile={tile}"
    runs = [
        (f"U-Net {t}, --no-verify", [t, "--no-verify"]),
        (f"U-Net {t}, verified (default: proxy tile 256)", [t]),
        (f"U-Net {t}, verified, no tiling checks", [t, "+verify.tiling=false"]),
        (
            f"U-Net {t}, min_overlap 32: seams fail, overlap analysis runs",
            [t, "metadata.min_overlap=[32,32]"],
        ),
    ]
    if only_unbounded:
        runs = []
    runs += [
        (
            f"U-Net tile={u}, seams on the artifact's own tile (tiling_max_tile 0)",
            [f"tile={u}", "+verify.tiling_max_tile=0"],
        )
        for u in unbounded
    ]
    measure(["build", "unet", t, "--out", "out-warmup", "--no-verify"], root, limit_gb)
    rows = []
    for i, (label, extra) in enumerate(runs):
        r = measure(["build", "unet", *extra, "--out", f"out-{i}"], root, limit_gb)
        rows.append(_row(label, r, limit_gb))
        print(" | ".join(rows[-1]), flush=True)
        if "fail" in label and r["rc"] == 1:
            failed = [ln.strip() for ln in r["out"].splitlines() if "verification failed" in ln]
            print("   ", failed[:1], flush=True)
        elif r["rc"] != 0 and not r["killed"]:
            print(r["out"], flush=True)
    return rows


def ab(root: Path, tile: int, repeat: int, limit_gb: float) -> list[tuple[str, str, str, str]]:
    """``--no-verify`` and the default build of the U-Net at ``tile``, alternated ``repeat`` times.

    Rows: the medians of each, then their ratio (verified / unverified).
    """
    write_unet_project(root, min_overlap=96)
    t = f"tile={tile}"
    runs = [(f"U-Net {t}, --no-verify", [t, "--no-verify"]), (f"U-Net {t}, verified", [t])]
    measure(["build", "unet", t, "--out", "out-warmup", "--no-verify"], root, limit_gb)
    figures: dict[str, list[dict]] = {label: [] for label, _ in runs}
    for i in range(repeat):
        for j, (label, extra) in enumerate(runs):
            shutil.rmtree(root / f"out-{j}", ignore_errors=True)
            r = measure(["build", "unet", *extra, "--out", f"out-{j}"], root, limit_gb)
            if r["rc"] != 0:
                print(r["out"], flush=True)
                raise SystemExit(f"{label}: exit code {r['rc']}")
            figures[label].append(r)
            print(f"run {i + 1}: {label}: {r['wall']:.1f} s, {r['peak_mb']:.0f} MB", flush=True)
    rows = []
    medians = []
    for label, rs in figures.items():
        wall = statistics.median(r["wall"] for r in rs)
        peak = statistics.median(r["peak_mb"] for r in rs)
        medians.append((wall, peak))
        rows.append((f"{label} (median of {len(rs)})", f"{wall:.1f}", f"{peak:.0f}", ""))
    (w0, p0), (w1, p1) = medians
    rows.append(("ratio verified / --no-verify", f"{w1 / w0:.2f}x", f"{p1 / p0:.2f}x", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unet-tile", type=int, default=1024)
    parser.add_argument("--unbounded-tiles", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--memory-limit-gb", type=float, default=12.0)
    parser.add_argument("--skip-examples", action="store_true")
    parser.add_argument("--skip-unet", action="store_true")
    parser.add_argument(
        "--only-unbounded",
        action="store_true",
        help="U-Net: only the runs on the artifact's own tile",
    )
    parser.add_argument(
        "--ab",
        type=int,
        default=0,
        metavar="N",
        help="only the U-Net at --unet-tile: --no-verify and verified alternately, N times "
        "each; medians and their ratio",
    )
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="czbuild-bench-verify-"))
    rows = []
    if args.ab:
        print(f"load average before: {os.getloadavg()}", flush=True)
        rows += ab(root / "unet", args.unet_tile, args.ab, args.memory_limit_gb)
        print(f"load average after: {os.getloadavg()}", flush=True)
    elif not args.skip_examples:
        rows += examples(root / "examples", args.memory_limit_gb)
    if not args.skip_unet and not args.ab:
        rows += unet(
            root / "unet",
            args.unet_tile,
            args.unbounded_tiles,
            args.memory_limit_gb,
            args.only_unbounded,
        )
    print()
    print("| run | wall (s) | peak RSS (MB) | summary |")
    print("| --- | ---: | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(json.dumps({"root": str(root)}))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
