"""Hostile-input corpus: what a build tells the user, and how it fails when the disk does.

No TensorFlow: builds run the real build layer (doit graph, sessions, stamps, manifest, worker
protocol) with the fake converter of :mod:`support.build_fakes`.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from czbuild.builder import BuildOptions, build, status
from czbuild.builder.reporter import BuildReporter
from support.build_fakes import BACKEND, make_project, with_fake, worker_env


def _build(variants, out: Path, **opts):
    stream = io.StringIO()
    opts.setdefault("in_process", True)
    report = build(variants, BuildOptions(out_dir=out, backend=BACKEND, **opts), out=stream)
    return report, stream.getvalue()


@pytest.fixture()
def warned(tmp_path: Path):
    """A project of two variants whose verification warns (tiling.seams) and one clean one."""
    root = tmp_path / "proj"
    variants = make_project(root, {"a": [256, 512], "b": [256]})
    warn = with_fake([v for v in variants if v.recipe == "a"], verify="warn")
    clean = [v for v in variants if v.recipe == "b"]
    return root, [*warn, *clean], tmp_path / "out"


# --- warnings reach the user ---------------------------------------------------------------


def test_the_build_summary_lists_each_variants_warnings(warned) -> None:
    _root, variants, out = warned
    report, text = _build(variants, out)
    assert report.ok
    assert sorted(report.warnings) == ["a@tile=256", "a@tile=512"]
    # under the variant's own line, in full ...
    built = text.index("built    a@tile=256")
    line = text[built:].splitlines()[1]
    assert line.strip().startswith("warning: tiling.seams (per-tile statistics 0.17): per-tile")
    # ... and in the summary, with what release will do about it
    assert "warning  a@tile=256: tiling.seams (per-tile statistics 0.17)" in text
    assert "warning  b@" not in text
    assert "2 variant(s) with warnings" in text and "--allow-warnings" in text


def test_an_up_to_date_build_still_reports_the_warnings(warned) -> None:
    _root, variants, out = warned
    _build(variants, out)
    report, text = _build(variants, out)
    assert report.summary.built == [] and sorted(report.warnings) == ["a@tile=256", "a@tile=512"]
    assert "warning  a@tile=512: tiling.seams (per-tile statistics 0.17)" in text


def test_a_warning_the_recipe_accepts_is_marked_as_accepted() -> None:
    from czbuild.builder.runner import warning_lines
    from czbuild.builder.status import record_warnings

    def record(name: str, **extra) -> dict:
        check = {"name": name, "status": "warning", "figure": "x", "message": "m", **extra}
        return {"checks": [check, {"name": "fidelity", "status": "passed"}], **extra}

    # by the recipe's accept list, by the settings the record was made with, or by the verifier
    by_recipe = record_warnings(record("semantics.output_range"), ("semantics.output_range",))
    by_settings = record_warnings(
        {**record("tiling.seams"), "settings": {"accept": ["tiling.seams"]}}
    )
    by_verifier = record_warnings(record("payload.model", details={"accepted": True}))
    not_accepted = record_warnings(record("tiling.seams"))
    assert [w.accepted for w in (*by_recipe, *by_settings, *by_verifier, *not_accepted)] == [
        True,
        True,
        True,
        False,
    ]
    assert "[accepted by verify.accept]" in by_recipe[0].line()
    lines = warning_lines({"x": by_recipe})
    assert lines == ["warning  x: semantics.output_range (x) [accepted]"]  # no release note
    assert "--allow-warnings" in warning_lines({"x": not_accepted})[-1]


def test_status_and_status_json_carry_the_warnings(warned, monkeypatch) -> None:
    _root, variants, out = warned
    _build(variants, out)
    results = {r.variant: r for r in status(variants, out)}
    assert [w.check for w in results["a@tile=256"].warnings] == ["tiling.seams"]
    assert results["b@tile=256"].warnings == ()
    data = results["a@tile=256"].to_json()
    assert data["warnings"] == [
        {
            "check": "tiling.seams",
            "figure": "per-tile statistics 0.17",
            "message": "per-tile statistics change the tiled output (fake)",
            "accepted": False,
        }
    ]

    from support.cli import run_cli

    monkeypatch.setattr("czbuild.cli.build_cmds._load", lambda args, project, out: variants)
    text = run_cli("status", "--out", str(out), cwd=out.parent, check=True).stdout
    assert "up to date   a@tile=256  (a/tile=256/a.czann)  [1 warning(s)]" in text
    assert "! warning: tiling.seams (per-tile statistics 0.17): per-tile statistics" in text
    as_json = run_cli("status", "--json", "--out", str(out), cwd=out.parent, check=True)
    by_name = {v["variant"]: v for v in json.loads(as_json.stdout)["variants"]}
    assert by_name["a@tile=512"]["warnings"][0]["check"] == "tiling.seams"
    assert by_name["b@tile=256"]["warnings"] == []


# --- the console during long work ------------------------------------------------------------


@pytest.mark.slow
def test_queued_start_phase_lines_and_run_times(tmp_path: Path, monkeypatch) -> None:
    """Two variants of one model share one worker: the second is queued, then starts.

    Its time is its own run time (about one sleep), not the time it waited; a phase the
    worker reports that lasts longer than ``phase_after`` gets a line.
    """
    monkeypatch.setattr(os, "environ", worker_env())
    monkeypatch.setattr(BuildReporter, "phase_after", 0.3)
    root = tmp_path / "proj"
    variants = with_fake(make_project(root, {"a": [256, 512]}), sleep=1.2)
    report, text = _build(variants, tmp_path / "out", in_process=False, jobs=2)
    assert report.ok, text
    lines = text.splitlines()
    queued = [ln.split()[1] for ln in lines if ln.startswith("queued ")]
    assert len(queued) == 1, text
    started = [ln.split()[1] for ln in lines if ln.startswith("start ")]
    assert sorted(started) == ["a@tile=256", "a@tile=512"]
    # the queued one starts only after the other one's work
    first = "a@tile=256" if queued[0] == "a@tile=512" else "a@tile=512"
    work = lines.index(next(ln for ln in lines if ln.strip().startswith(f"{first}: fake work")))
    assert lines.index(f"queued   {queued[0]}") < work < lines.index(f"start    {queued[0]}")
    assert re.search(r"^ +a@tile=\d+: fake work \(\d+ s\)$", text, re.M), text
    times = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^built +(\S+) +\((\d+\.\d+) s\)", text, re.M)
    }
    assert times[queued[0]] < 2.0, text  # run time, not the ~2.4 s since doit handed it over


def test_phases_from_an_in_process_build_reach_the_reporter(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(BuildReporter, "phase_after", 0.2)
    variants = with_fake(make_project(tmp_path / "proj", {"a": [256]}), sleep=0.8)
    _report, text = _build(variants, tmp_path / "out")
    assert "start    a@tile=256" in text
    assert re.search(r"^ +a@tile=256: fake work \(\d+ s\)$", text, re.M), text


# --- a full disk, a read-only folder (issue 16 item 8) ----------------------------------------


def _intact(out: Path, variants) -> None:
    """Every artifact that has a stamp is complete: its bytes are the ones the stamp records."""
    import hashlib

    from czbuild.builder.stamps import read_stamp

    for variant in variants:
        stamp = read_stamp(out, str(variant.output))
        if stamp is None:
            continue
        data = (out / str(variant.output)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == stamp["artifact"]["sha256"]


def _full_disk(path) -> OSError:
    import errno

    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_doit_cannot_write_its_state_file(tmp_path: Path, monkeypatch) -> None:
    """doit's sqlite3.OperationalError at the end of a run is a note, not a traceback."""
    import sqlite3

    import doit.dependency

    def full(self) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(doit.dependency.SqliteDB, "dump", full)
    variants = make_project(tmp_path / "proj", {"a": [256, 512]})
    report, text = _build(variants, tmp_path / "out")
    assert report.ok, text
    assert "czbuild: note: cannot write doit's state file" in text
    assert "database or disk is full" in text and "Traceback" not in text
    monkeypatch.undo()
    again, _ = _build(variants, tmp_path / "out")
    assert again.summary.built == []  # the stamps, not doit's state, decide


def test_doit_cannot_open_its_state_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".czbuild" / "doit.sqlite3").mkdir(parents=True)  # not a database
    variants = make_project(tmp_path / "proj", {"a": [256]})
    report, text = _build(variants, out)
    assert report.ok, text
    assert "czbuild: note: cannot open doit's state file" in text


def test_a_full_disk_when_writing_the_manifest(tmp_path: Path, monkeypatch) -> None:
    from czbuild.errors import BuildError

    def no_space(path, data, **kwargs) -> None:
        raise _full_disk(path)

    monkeypatch.setattr("czbuild.builder.manifest.atomic_write", no_space)
    variants = make_project(tmp_path / "proj", {"a": [256, 512]})
    out = tmp_path / "out"
    stream = io.StringIO()
    with pytest.raises(BuildError) as caught:
        build(variants, BuildOptions(out_dir=out, backend=BACKEND, in_process=True), out=stream)
    message = str(caught.value)
    assert f"cannot write {out / 'manifest.json'}: No space left on device" in message
    assert "artifacts finished before this are intact" in message
    text = stream.getvalue()
    assert "a/tile=256/a.czann is built and recorded, but cannot write" in text
    _intact(out, variants)
    monkeypatch.undo()
    report, _ = _build(variants, out)
    assert report.ok and report.summary.built == []
    assert (out / "manifest.json").is_file()


def test_an_output_folder_made_read_only_mid_build(tmp_path: Path, monkeypatch) -> None:
    """The first stamp is written, then the folder refuses writes: say which file, keep data."""
    import errno

    from czbuild.builder import stamps

    real = stamps.write_json
    written: list[Path] = []

    def read_only_after_one(path, value, **kwargs) -> None:
        if written:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real(path, value, **kwargs)
        written.append(Path(path))

    monkeypatch.setattr(stamps, "write_json", read_only_after_one)
    variants = make_project(tmp_path / "proj", {"a": [256, 512]})
    out = tmp_path / "out"
    report, _text = _build(variants, out)
    assert not report.ok and len(report.summary.built) == 1
    (failed,) = report.summary.failed.values()
    assert "is complete, but its build record could not be written: cannot write" in failed
    assert ".json: Permission denied; the next build makes it again" in failed
    _intact(out, variants)
    monkeypatch.undo()
    again, _ = _build(variants, out)
    assert again.ok and len(again.summary.built) == 1  # only the unrecorded one


def test_a_lock_file_that_cannot_be_created(tmp_path: Path, monkeypatch) -> None:
    import errno

    from czbuild.errors import BuildError

    def refuse(self, *args, **kwargs) -> None:
        raise PermissionError(errno.EROFS, "Read-only file system", "lock")

    monkeypatch.setattr("filelock.UnixFileLock.acquire", refuse)
    monkeypatch.setattr("filelock.FileLock.acquire", refuse, raising=False)
    variants = make_project(tmp_path / "proj", {"a": [256]})
    with pytest.raises(BuildError, match=r"cannot take the build lock .*Read-only file system"):
        _build(variants, tmp_path / "out")


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (
            _full_disk("/data/build/manifest.json"),
            "czbuild: error: /data/build/manifest.json: No space left on device",
            1,
        ),
        (RuntimeError("boom"), "czbuild: internal error: RuntimeError: boom (a czbuild bug;", 70),
    ],
    ids=["oserror", "bug"],
)
def test_the_cli_never_prints_a_traceback_without_debug(
    tmp_path: Path, monkeypatch, error: Exception, expected: str, code: int
) -> None:
    from support.cli import run_cli

    def explode(*args, **kwargs):
        raise error

    (tmp_path / "recipes").mkdir()
    monkeypatch.setattr("czbuild.cli.build_cmds._load", explode)
    result = run_cli("status", cwd=tmp_path)
    assert result.returncode == code
    assert result.stderr.strip() == expected or result.stderr.startswith(expected)
    assert "Traceback" not in result.stdout + result.stderr
    with pytest.raises(type(error)):
        run_cli("--debug", "status", cwd=tmp_path)


# --- inputs that are not files (issue 16 item 13) ----------------------------------------------


def test_a_fifo_as_the_model_is_named_as_such_not_missing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    variants = make_project(root, {"a": [256]})
    model = root / "models" / "a.bin"
    model.unlink()
    os.mkfifo(model)
    report, _text = _build(variants, tmp_path / "out")
    (message,) = report.summary.failed.values()
    assert "model is a FIFO (named pipe), not a file" in message and "models/a.bin" in message
    assert "missing" not in message
    model.unlink()
    report, _text = _build(variants, tmp_path / "out")
    assert "model missing: models/a.bin" in report.summary.failed["a@tile=256"]


# --- what killed processes leave behind (issue 16 item 14) ---------------------------------


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftovers(out: Path, pid: int) -> list[Path]:
    """Temporaries a build killed while writing would leave, named as czbuild names them."""
    files = [
        out / ".czbuild" / "reports" / "a" / "tile=256" / f".a.czann.verify.json.{pid}-0a1b2c.tmp",
        out / "gone" / "default" / f".gone.czann.{pid}-0a1b2c3d4e5f.tmp",
        out / "gone" / "default" / f".gone.czann.verifying-{pid}.tmp",
        out / f".manifest.json.{pid}-00ff00ff00ff.tmp",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    return files


@pytest.mark.parametrize("how", ["build", "clean --orphans"])
def test_the_next_run_sweeps_temporaries_of_dead_processes(tmp_path: Path, how: str) -> None:
    from czbuild.builder import clean

    variants = make_project(tmp_path / "proj", {"a": [256]})
    out = tmp_path / "out"
    _build(variants, out)
    dead = _leftovers(out, _dead_pid())
    alive = out / "a" / "tile=256" / f".a.czann.{os.getpid()}-abcdef.tmp"  # a live writer's
    alive.write_bytes(b"in use")
    if how == "build":
        _build(variants, out)
    else:
        clean(variants, out, orphans=True)
    assert [p for p in dead if p.exists()] == []
    assert alive.exists()


def test_the_atomic_writer_tags_its_temporary_with_its_pid(tmp_path: Path, monkeypatch) -> None:
    from czbuild.files import atomic
    from czbuild.files.scratch import temporary_owner

    seen: list[str] = []
    real = os.replace

    def spy(src, dst) -> None:
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    atomic.atomic_write(tmp_path / "x.json", b"{}")
    (name,) = seen
    assert temporary_owner(name) == os.getpid()
    assert temporary_owner(".x.czann.verifying-42.tmp") == 42
    assert temporary_owner("x.czann") is None and temporary_owner(".x.abc.tmp") is None
