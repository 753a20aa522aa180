"""Kill-safety and concurrent builds, with real processes and a fake (TensorFlow-free) converter."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from czbuild.builder import BuildOptions, build, iter_stamps, status
from czbuild.builder.stamps import state_dir
from czbuild.errors import BuildError
from support.build_fakes import (
    BACKEND,
    driver_command,
    make_project,
    variants_mid_write,
    with_fake,
    worker_env,
)

N_VARIANTS = 6


def _artifacts(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.czann") if ".czbuild" not in p.parts)


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return "\nState:\tZ" not in handle.read()
    except FileNotFoundError:
        return False


def _worker_pids(root: Path) -> set[int]:
    log = root / "loads.log"
    return (
        {int(line.split()[0]) for line in log.read_text().splitlines()} if log.exists() else set()
    )


def _assert_complete_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["model.json", "model.model"]


@pytest.mark.slow  # two builds in fresh processes with worker pools (~6 s each)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_build_leaves_no_partial_files_and_resumes(tmp_path: Path, sig) -> None:
    root, out = tmp_path / "proj", tmp_path / "out"
    proc = subprocess.Popen(
        driver_command(root, out, sleep=0.6),
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: len(_artifacts(out)) >= 1, what="the first artifact")
        # land inside the next variant's write: it signals while half of it is written
        _wait_for(lambda: variants_mid_write(root), what="a half-written artifact")
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    # workers notice their parent is gone and stop (watchdog or pool shutdown)
    _wait_for(
        lambda: not any(_alive(p) for p in _worker_pids(root)), timeout=10, what="workers to exit"
    )

    finished = _artifacts(out)
    assert 1 <= len(finished) < N_VARIANTS
    for path in finished:  # nothing half-written under a final name
        _assert_complete_zip(path)
    stamped = {s["output"]: (out / s["output"]).stat() for s in iter_stamps(out)}
    assert stamped, "the first finished artifact must have been recorded"

    rerun = subprocess.run(
        driver_command(root, out, sleep=0.6),
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(_artifacts(out)) == N_VARIANTS
    for rel, st in stamped.items():  # finished before the kill: not rebuilt
        now = (out / rel).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), rel
        assert f"built    {_variant_of(rel)} " not in rerun.stdout
    assert not [p for p in out.rglob("*.tmp") if ".czbuild" not in p.parts]
    assert all(s.up_to_date for s in status(_variants(root, 0.6), out))


def _variant_of(output: str) -> str:
    recipe, vdir, _ = output.split("/")
    return f"{recipe}@{vdir}"


def _variants(root: Path, sleep: float):
    """The variants :data:`support.build_fakes.DRIVER` builds with ``sleep``."""
    variants = make_project(root, {"a": [256, 512, 768, 1024], "b": [256, 512]})
    return with_fake(variants, sleep=sleep / 2, sleep_mid_write=sleep / 2)


@pytest.mark.slow  # three builds in fresh processes (~4 s)
def test_second_build_refuses_or_waits_while_first_holds_the_lock(tmp_path: Path) -> None:
    root, out = tmp_path / "proj", tmp_path / "out"
    first = subprocess.Popen(
        driver_command(root, out, sleep=0.3),
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        owner = state_dir(out) / "lock.owner"
        _wait_for(
            lambda: owner.exists() and f"pid {first.pid}:" in owner.read_text(),
            what="the first build to take the lock",
        )
        # refuse at once
        with pytest.raises(BuildError, match="another czbuild build holds the lock") as info:
            build(_variants(root, 0.3), BuildOptions(out_dir=out, backend=BACKEND, lock_timeout=0))
        assert f"pid {first.pid}" in str(info.value)
        # wait: a second process blocks until the first is done, then finds nothing to do
        second = subprocess.run(
            driver_command(root, out, sleep=0.3, wait=120),
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        first_out, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, first_out + first_err
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"czbuild: {N_VARIANTS} built" in first_out
    assert f"czbuild: 0 built, {N_VARIANTS} up to date" in second.stdout
    for path in _artifacts(out):
        _assert_complete_zip(path)
    assert len(iter_stamps(out)) == N_VARIANTS


def test_worker_crash_fails_only_that_variant(tmp_path: Path, monkeypatch) -> None:
    root, out = tmp_path / "proj", tmp_path / "out"
    variants = make_project(root, {"a": [256], "b": [256]})
    # the fake converter kills its own worker for recipe b (like the OOM killer would)
    from support.build_fakes import with_fake

    variants[1] = with_fake([variants[1]], sleep="os-kill")[0]
    monkeypatch.setattr(os, "environ", worker_env())
    stream = io.StringIO()
    report = build(variants, BuildOptions(out_dir=out, backend=BACKEND), out=stream)
    assert report.summary.built == ["a@tile=256"]
    assert "conversion worker was killed by signal 9" in report.summary.failed["b@tile=256"]
