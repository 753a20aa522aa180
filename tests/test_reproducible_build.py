"""Byte-identical artifacts: the bundled examples built twice, in separate processes, differently.

The repository's recipes/, configs/ and models/ are copied to two folders and built for real
(TensorFlow, tf2onnx) by two `czbuild build` processes that differ in everything that must not
matter: project location, working directory, TZ, umask, PYTHONHASHSEED, locale, TMPDIR, the
order the recipes are named in, and -j. Every artifact must have the same sha256, and so must
the two lock files. A third process then runs `czbuild build --locked` in a fresh copy against
the first lock. When an artifact differs, the failure message carries the per-member
explanation of czbuild.release.diff.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.release_fakes import REPO_DIR, copy_example_project

pytestmark = pytest.mark.slow

ENVIRONMENTS = {
    "a": {
        "TZ": "UTC",
        "PYTHONHASHSEED": "0",
        "LC_ALL": "C",
        "umask": 0o022,
        "jobs": "1",
        "names": [],
        "cwd": "recipes",
    },
    "b": {
        "TZ": "Pacific/Chatham",
        "PYTHONHASHSEED": "4242",
        "LC_ALL": "C.UTF-8",
        "umask": 0o077,
        "jobs": "2",
        "names": ["volume_3d", "nuclei", "legacy_seed", "cells_onnx", "denoise"],
        "cwd": None,
    },
}


def _czbuild(
    args: list[str], *, cwd: Path, env: dict[str, str], umask: int = 0o022
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO_DIR), os.environ.get("PYTHONPATH", "")] if p
    )
    return subprocess.run(
        [sys.executable, "-m", "czbuild", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        preexec_fn=lambda: os.umask(umask),
    )


def _artifacts(build_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(build_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(build_dir.rglob("*"))
        if p.suffix in (".czann", ".czmodel")
    }


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    roots = {}
    for key, setting in ENVIRONMENTS.items():
        base = tmp_path_factory.mktemp(f"repro-{key}")
        root = copy_example_project(base / ("proj" if key == "a" else "deeper/other-name"))
        tmp = base / "tmp"
        tmp.mkdir()
        cwd = root / setting["cwd"] if setting["cwd"] else base
        args = ["build", *setting["names"], "-j", setting["jobs"]]
        if setting["cwd"] is None:
            args += ["--project", str(root)]
        proc = _czbuild(
            args,
            cwd=cwd,
            umask=setting["umask"],
            env={
                "TZ": setting["TZ"],
                "PYTHONHASHSEED": setting["PYTHONHASHSEED"],
                "LC_ALL": setting["LC_ALL"],
                "TMPDIR": str(tmp),
            },
        )
        assert proc.returncode == 0, f"build {key} failed:\n{proc.stdout}\n{proc.stderr}"
        roots[key] = root
    return roots


def test_every_artifact_is_byte_identical(builds: dict[str, Path]) -> None:
    from czbuild.release.diff import explain_differences
    from czbuild.release.difference import format_differences

    a, b = _artifacts(builds["a"] / "build"), _artifacts(builds["b"] / "build")
    assert sorted(a) == sorted(b) and len(a) == 7, (a, b)
    explanations = []
    for rel in sorted(a):
        if a[rel] != b[rel]:
            diffs = explain_differences(
                builds["a"] / "build" / rel, builds["b"] / "build" / rel, labels=("run a", "run b")
            )
            explanations.append(f"{rel}:\n  " + "\n  ".join(format_differences(diffs)))
    assert not explanations, "artifacts differ between the runs:\n" + "\n".join(explanations)


def test_the_lock_files_are_identical(builds: dict[str, Path]) -> None:
    lock_a = (builds["a"] / "czbuild.lock").read_bytes()
    assert lock_a == (builds["b"] / "czbuild.lock").read_bytes()
    assert b"/tmp" not in lock_a and str(builds["a"]).encode() not in lock_a


def test_locked_build_in_a_fresh_checkout_matches(builds: dict[str, Path], tmp_path: Path) -> None:
    root = copy_example_project(tmp_path / "fresh")
    shutil.copy2(builds["a"] / "czbuild.lock", root / "czbuild.lock")
    proc = _czbuild(["build", "--locked"], cwd=root, env={"TZ": "Asia/Kolkata"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 artifact(s) match czbuild.lock; installed" in proc.stdout
    assert _artifacts(root / "build") == _artifacts(builds["a"] / "build")


def test_the_savedmodel_payloads_also_run_identically(builds: dict[str, Path]) -> None:
    from czbuild.formats import read_artifact
    from czbuild.release.numeric import compare_payloads

    rel = "legacy_seed/default/legacy_seed.czmodel"
    a = read_artifact(builds["a"] / "build" / rel).model_bytes
    b = read_artifact(builds["b"] / "build" / rel).model_bytes
    result = compare_payloads(a, b)
    assert result.ok and result.max_abs_diff == 0.0, result.message
    assert result.input_shape == (1, 256, 256, 1)
