"""``czbuild build / status / clean`` and plain ``doit`` on real recipes.

Fast tests build with the fake converter through the library (stamps as a real build writes
them) and then drive the CLI in subprocesses; tests marked ``slow`` convert real (tiny)
Keras models with TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from czbuild.builder.locking import BuildLock
from support.build_fakes import REPO_DIR, fake_build, make_recipe_project, worker_env
from support.cli import run_cli

N_TILES = (32, 64)


def czbuild(
    *args: str,
    cwd: Path,
    check: bool = False,
    timeout: float = 300,
    fresh: bool = False,
    **env: str,
) -> Any:
    """Run the czbuild CLI: in this process, or with ``fresh`` in a new one (``python -m``)."""
    if not fresh:
        return run_cli(*args, cwd=cwd, check=check, **env)
    proc = subprocess.run(
        [sys.executable, "-m", "czbuild", *args],
        cwd=cwd,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"czbuild {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def status_json(project: Path, *args: str) -> dict[str, list[str]]:
    """variant -> reason messages ([] when up to date)."""
    proc = czbuild("status", "--json", *args, cwd=project, check=True)
    data = json.loads(proc.stdout)
    return {v["variant"]: [r["message"] for r in v["reasons"]] for v in data["variants"]}


@pytest.fixture()
def project(tiny_project: Path) -> Path:
    return tiny_project


def test_status_of_a_fresh_project(project: Path) -> None:
    proc = czbuild("status", cwd=project, check=True)
    assert "out of date  r00@tile=32  (r00/tile=32/r00.czann)" in proc.stdout
    assert "- never built" in proc.stdout
    assert "czbuild: 0 up to date, 4 out of date" in proc.stdout
    assert czbuild("status", "--check", cwd=project).returncode == 1


@pytest.mark.slow
def test_noop_build_does_not_import_tensorflow(project: Path) -> None:
    fake_build(project)
    code = (
        "import sys; from czbuild.cli import main; rc = main(['build']); "
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF'); sys.exit(rc)"
    )
    for _ in range(2):  # the first run may compose and fill the caches; both must stay TF-free
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=project,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "czbuild: 0 built, 4 up to date, 0 failed" in proc.stdout
        assert proc.stdout.strip().endswith("NO-TF")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_comment_only_edit_and_touch_rebuild_nothing(project: Path) -> None:
    fake_build(project)
    _edit(project / "recipes/r00.yaml", "# r00: a tiny", "# r00: an edited comment on a tiny")
    _edit(project / "recipes/r00.yaml", "format: czann", "format: czann   # trailing comment")
    os.utime(project / "models/tiny.py")
    os.utime(project / "LICENSE")
    assert all(reasons == [] for reasons in status_json(project).values())
    proc = czbuild("build", cwd=project, check=True)
    assert "czbuild: 0 built, 4 up to date" in proc.stdout


@pytest.mark.parametrize(
    "change, affected, reason",
    [
        pytest.param(
            lambda p: _edit(p / "recipes/r00.yaml", "min_overlap: [8, 8]", "min_overlap: [16, 16]"),
            {"r00@tile=32", "r00@tile=64"},
            "spec value metadata.min_overlap[0] changed: 8 -> 16",
            id="recipe-value",
        ),
        pytest.param(
            lambda p: (p / "models/tiny.py").write_text(
                (p / "models/tiny.py").read_text() + "# retrained\n"
            ),
            {"r00@tile=32", "r00@tile=64", "r01@tile=32", "r01@tile=64"},
            "model changed: models/tiny.py",
            id="model-bytes",
        ),
        pytest.param(
            lambda p: (p / "LICENSE").write_text("Apache-2.0\n"),
            {"r00@tile=32", "r00@tile=64", "r01@tile=32", "r01@tile=64"},
            "licence changed: LICENSE",
            id="licence",
        ),
        pytest.param(
            lambda p: (p / "build/r01/tile=64/r01.czann").unlink(),
            {"r01@tile=64"},
            "output missing: r01/tile=64/r01.czann",
            id="output-missing",
        ),
        pytest.param(
            lambda p: (p / "build/r01/tile=64/r01.czann").write_bytes(b"x"),
            {"r01@tile=64"},
            "output modified since it was built: r01/tile=64/r01.czann",
            id="output-modified",
        ),
    ],
)
def test_status_names_the_reason(project: Path, change, affected, reason) -> None:
    fake_build(project)
    change(project)
    stale = {name: reasons for name, reasons in status_json(project).items() if reasons}
    assert set(stale) == affected
    assert all(any(reason in r for r in reasons) for reasons in stale.values()), stale


def test_czbuild_version_change_is_reported(project: Path, monkeypatch) -> None:
    fake_build(project)
    from czbuild.builder import status, toolchain
    from czbuild.recipe import load_variants

    monkeypatch.setattr(toolchain, "czbuild_version", lambda: "9.9.9")
    results = status(load_variants(project_dir=project), project / "build")
    assert all(
        any("czbuild version changed" in r.message and "-> 9.9.9" in r.message for r in s.reasons)
        for s in results
    )


def test_second_build_refuses_while_the_lock_is_held(project: Path) -> None:
    lock = BuildLock(project / "build")
    lock.acquire(timeout=0)
    try:
        proc = czbuild("build", "--wait", "0", cwd=project, fresh=True)  # another process
    finally:
        lock.release()
    assert proc.returncode == 1
    assert "another czbuild build holds the lock" in proc.stderr
    assert "--wait SECONDS" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_recipe_error_is_one_line_and_nonzero(project: Path) -> None:
    _edit(project / "recipes/r01.yaml", "min_overlap: [8, 8]", "min_overlap: [8, 8]\n  colour: red")
    proc = czbuild("build", cwd=project)
    assert proc.returncode == 2
    assert "r01.yaml" in proc.stderr and "colour" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_clean_removes_what_was_built(project: Path) -> None:
    fake_build(project)
    proc = czbuild("clean", "r00", cwd=project, check=True)
    assert "removed  r00/tile=32/r00.czann" in proc.stdout
    assert not (project / "build/r00").exists()
    assert (project / "build/r01/tile=32/r01.czann").exists()
    proc = czbuild("clean", cwd=project, check=True)
    assert "removed 2 artifact(s)" in proc.stdout
    manifest = json.loads((project / "build/manifest.json").read_text())
    assert manifest["artifacts"] == []


def _doit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=cwd,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow  # five `doit` runs in fresh processes (~3-5 s)
def test_doit_list_info_clean_forget(project: Path) -> None:
    shutil.copy(REPO_DIR / "dodo.py", project / "dodo.py")
    fake_build(project)
    listing = _doit("list", "--all", cwd=project)
    assert listing.returncode == 0, listing.stderr
    assert "build:r00@tile:32" in listing.stdout and "manifest" in listing.stdout
    info = _doit("info", "build:r00@tile:32", cwd=project)
    assert info.returncode == 0 and "status     : up-to-date" in info.stdout
    run = _doit(cwd=project)  # everything is up to date: a no-op
    assert run.returncode == 0 and "czbuild: 0 built, 4 up to date" in run.stdout, run.stdout
    assert _doit("forget", cwd=project).returncode == 0
    (project / "build/r00/tile=32/r00.czann").unlink()
    info = _doit("info", "build:r00@tile:32", cwd=project)
    assert "output missing: r00/tile=32/r00.czann" in info.stdout
    clean = _doit("clean", cwd=project)
    assert clean.returncode == 0, clean.stderr
    assert not list((project / "build").rglob("*.czann"))
    assert json.loads((project / "build/manifest.json").read_text())["artifacts"] == []


# --- real conversions (TensorFlow) -------------------------------------------------------


@pytest.mark.slow
def test_real_build_then_noop(project: Path) -> None:
    from czbuild.formats.archive import read_artifact

    proc = czbuild("build", "-j", "2", cwd=project, timeout=900, fresh=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "czbuild: 4 built, 0 up to date, 0 failed" in proc.stdout
    for tile in N_TILES:
        art = read_artifact(project / f"build/r00/tile={tile}/r00.czann")
        assert tuple(art.metadata.input_shape) == (tile, tile, 1)
    manifest = json.loads((project / "build/manifest.json").read_text())
    assert len(manifest["artifacts"]) == 4
    assert all(set(a["members"]) >= {"model.json", "model.model"} for a in manifest["artifacts"])
    proc = czbuild("build", cwd=project, check=True)
    assert "czbuild: 0 built, 4 up to date" in proc.stdout
    # the variants now come from the compose cache (plain specs): a rebuild must still work
    factory = project / "models/tiny.py"
    factory.write_text(factory.read_text().replace("Conv2D(4,", "Conv2D(6,"))
    proc = czbuild("build", cwd=project, check=True, timeout=900, fresh=True)
    assert "czbuild: 4 built, 0 up to date" in proc.stdout
    assert read_artifact(project / "build/r01/tile=64/r01.czann").metadata.input_shape == (
        64,
        64,
        1,
    )


@pytest.mark.slow
def test_real_failure_names_the_error_and_others_build(project: Path) -> None:
    (project / "models/bad.py").write_text("def build():\n    raise ValueError('no weights')\n")
    _edit(project / "recipes/r01.yaml", "../models/tiny.py:build", "../models/bad.py:build")
    proc = czbuild("build", cwd=project, timeout=900, fresh=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED   r01@tile=32" in proc.stdout
    assert "no weights" in proc.stdout
    assert "czbuild: 2 built, 0 up to date, 2 failed" in proc.stdout
    assert "2 of 4 variants failed" in proc.stderr


@pytest.mark.slow
def test_real_metadata_error_names_the_recipe_key_and_line(tmp_path: Path) -> None:
    project = make_recipe_project(tmp_path / "proj", n_recipes=1, tiles=(32,))
    recipe = project / "recipes/r00.yaml"
    _edit(recipe, "classes: [bg, fg]", "classes: [bg, fg, extra]")  # the model outputs 2
    line = recipe.read_text().splitlines().index("  classes: [bg, fg, extra]") + 1
    proc = czbuild("build", cwd=project, timeout=900, fresh=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"recipes/r00.yaml:{line}: metadata.classes: 3 names but" in proc.stdout, proc.stdout
    assert "Classes:" not in proc.stdout


@pytest.mark.slow
def test_real_sigkill_then_resume(tmp_path: Path) -> None:
    project = make_recipe_project(tmp_path / "proj", n_recipes=3, tiles=(32, 64))
    proc = subprocess.Popen(
        [sys.executable, "-m", "czbuild", "build"],
        cwd=project,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out = project / "build"
    try:
        deadline = time.monotonic() + 600
        while not list(out.rglob("*.czann")):
            assert time.monotonic() < deadline and proc.poll() is None, "no artifact appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = {p: p.stat() for p in out.rglob("*.czann")}
    assert 1 <= len(finished) < 6
    from czbuild.builder import iter_stamps
    from czbuild.formats.archive import read_artifact

    for path in finished:
        read_artifact(path)  # complete and valid
    stamped = {out / s["output"] for s in iter_stamps(out)}
    rerun = czbuild("build", cwd=project, timeout=900, fresh=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(list(out.rglob("*.czann"))) == 6
    for path in stamped:
        assert path.stat().st_ino == finished[path].st_ino
    assert f"czbuild: {6 - len(stamped)} built, {len(stamped)} up to date" in rerun.stdout
