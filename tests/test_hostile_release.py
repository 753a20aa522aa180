"""Hostile-input corpus: the release folder and temporaries never lose a user's data.

No TensorFlow: :func:`czbuild.release.dist.write_dist` is exercised directly on small files; a
kill between the two renames of the swap is a real SIGKILL of a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from czbuild.errors import BuildError
from czbuild.files.scratch import make_scratch, owner_pid, sweep_dead, temp_name
from czbuild.release.dist import MARKER_NAME, check_target, recover, write_dist

REPO = Path(__file__).resolve().parents[1]


def _artifacts(root: Path, text: str) -> list[tuple[str, Path]]:
    src = root / "src"
    src.mkdir(exist_ok=True)
    (src / "a.czann").write_text(text)
    return [("a/a.czann", src / "a.czann")]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_files_named_like_a_release_are_not_enough_to_replace_a_folder(tmp_path: Path):
    dist = tmp_path / "dist"
    dist.mkdir()
    for name, text in {"release.json": "{}", "SHA256SUMS": "", "thesis.docx": "years"}.items():
        (dist / name).write_text(text)
    with pytest.raises(BuildError, match="is not a release czbuild wrote"):
        write_dist(dist, _artifacts(tmp_path, "x"), {"format": 1})
    assert sorted(p.name for p in dist.iterdir()) == ["SHA256SUMS", "release.json", "thesis.docx"]


def test_a_forged_marker_does_not_vouch_for_other_files(tmp_path: Path):
    dist = tmp_path / "dist"
    write_dist(dist, _artifacts(tmp_path, "x"), {"format": 1})
    (dist / "release.json").write_text('{"edited": true}\n')  # marker no longer matches
    with pytest.raises(BuildError, match="no valid .czbuild-release marker"):
        check_target(dist)


def test_a_release_czbuild_wrote_is_replaced_and_lists_what_it_wrote(tmp_path: Path):
    dist = tmp_path / "dist"
    write_dist(dist, _artifacts(tmp_path, "one"), {"format": 1})
    marker = json.loads((dist / MARKER_NAME).read_text())
    assert marker["files"] == ["SHA256SUMS", "a/a.czann", "release.json"]
    write_dist(dist, _artifacts(tmp_path, "two"), {"format": 1})
    assert (dist / "a" / "a.czann").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "src"]


_KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
import czbuild.release.dist as dist_mod
calls = []
real = os.replace
def replace(a, b):
    real(a, b)
    calls.append(b)
    if len(calls) == 1 and sys.argv[2] == "swap":
        os.kill(os.getpid(), signal.SIGKILL)
dist_mod.os.replace = replace
dist = Path(sys.argv[1])
(dist.parent / "src" / "a.czann").write_text("new")
dist_mod.write_dist(dist, [("a/a.czann", dist.parent / "src" / "a.czann")], {"format": 2})
"""


def test_a_kill_between_the_renames_is_finished_by_the_next_run(tmp_path: Path):
    dist = tmp_path / "dist"
    write_dist(dist, _artifacts(tmp_path, "old"), {"format": 1})
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_BETWEEN_RENAMES, str(dist), "swap"],
        env={"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == -9
    assert not dist.exists()  # the window the issue found: only .dist.old-* and .dist.tmp-*
    actions = recover(dist)
    assert any("finished the interrupted swap" in a for a in actions), actions
    assert (dist / "a" / "a.czann").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "src"]


def test_an_incomplete_new_release_is_rolled_back(tmp_path: Path):
    dist = tmp_path / "dist"
    write_dist(dist, _artifacts(tmp_path, "old"), {"format": 1})
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_BETWEEN_RENAMES, str(dist), "swap"],
        env={"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == -9
    (staged,) = [p for p in tmp_path.iterdir() if p.name.startswith(".dist.tmp-")]
    (staged / MARKER_NAME).unlink()  # as if killed before the staging folder was complete
    check_target(dist)  # any release run recovers first
    assert (dist / "a" / "a.czann").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "src"]


def test_temporaries_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path):
    dead = _dead_pid()
    stale = tmp_path / f"czbuild-release-{dead}-0a1b2c3d"
    stale.mkdir()
    (stale / "big.czann").write_bytes(b"x")
    live = tmp_path / temp_name("czbuild-release")
    live.mkdir()
    other = tmp_path / "czbuild-release-notes"
    other.mkdir()
    assert owner_pid(stale.name, "czbuild-release") == dead
    assert sweep_dead(tmp_path, "czbuild-release") == [stale]
    assert live.is_dir() and other.is_dir()


def test_make_scratch_sweeps_the_temporary_folder(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"czbuild-check-{_dead_pid()}-deadbeef"
    stale.mkdir()
    fresh = make_scratch("check")
    assert not stale.exists() and fresh.is_dir() and fresh.parent == tmp_path


def test_lock_file_updates_of_one_project_are_serialised(tmp_path: Path, monkeypatch):
    """Builds into different --out folders share czbuild.lock: its update holds the project lock."""
    import threading

    from czbuild.builder import locking
    from czbuild.release import updating

    inside, leave = threading.Event(), threading.Event()

    def entries_from_build(out_dir, names, previous):
        inside.set()
        assert leave.wait(30)
        return {}

    monkeypatch.setattr(updating, "entries_from_build", entries_from_build)
    worker = threading.Thread(
        target=updating.update_lock_from_build, args=(tmp_path, tmp_path / "out-a", [])
    )
    worker.start()
    try:
        assert inside.wait(30)
        with (
            pytest.raises(BuildError, match="another czbuild process has been updating"),
            locking.project_lock(tmp_path, timeout=0),
        ):
            pass
    finally:
        leave.set()
        worker.join()
    with locking.project_lock(tmp_path, timeout=0):  # free again once the update is done
        pass


# --- verification warnings (issue 14 §4) -------------------------------------------------------


@pytest.fixture(scope="module")
def example_repo(tmp_path_factory) -> Path:
    from support.release_fakes import cli, copy_example_project, git_init

    root = copy_example_project(tmp_path_factory.mktemp("warned") / "proj")
    with pytest.MonkeyPatch.context() as mp:
        result = cli(["build", "--project", str(root)], mp)
    assert result.exit_code == 0, result.output
    git_init(root)
    return root


def _seams_warning(path: Path, variant):
    from czbuild.builder.status import CheckWarning
    from czbuild.release.release import VerifyOutcome

    if variant.recipe != "nuclei":
        return VerifyOutcome("passed", "ok")
    warning = CheckWarning("tiling.seams", "per-tile statistics 0.17", "ZEN shows seams")
    return VerifyOutcome("passed", "ok", (warning,))


def _release_example(root: Path, **kwargs):
    from czbuild.recipe import load_variants
    from czbuild.release.release import release
    from support.release_fakes import fake_options

    return release(
        load_variants(project_dir=root),
        project_dir=root,
        dist_dir=root / "dist",
        options=fake_options(),
        reference_dirs=[root / "build"],
        verify=True,
        verifier=_seams_warning,
        **kwargs,
    )


def test_release_refuses_artifacts_with_warnings_the_recipe_does_not_accept(
    example_repo: Path, tmp_path: Path
) -> None:
    import shutil

    from czbuild.errors import VerifyError

    root = Path(shutil.copytree(example_repo, tmp_path / "proj", symlinks=True))
    with pytest.raises(VerifyError) as caught:
        _release_example(root)
    message = str(caught.value)
    assert "verification warnings in 3 artifact(s): nuclei@tile=128: tiling.seams" in message
    assert "verify: accept: [tiling.seams]" in message and "--allow-warnings" in message
    assert not (root / "dist").exists()

    report = _release_example(root, allow_warnings=True)
    assert any(n.startswith("released with verification warnings") for n in report.notes)
    entries = {e["variant"]: e for e in report.manifest["artifacts"]}
    assert entries["nuclei@tile=256"]["warnings"] == [
        {"check": "tiling.seams", "figure": "per-tile statistics 0.17", "accepted": False}
    ]
    assert "warnings" not in entries["denoise"]


def test_an_accepted_warning_does_not_block_the_release(example_repo: Path, tmp_path: Path):
    import shutil

    from czbuild.builder.status import CheckWarning
    from czbuild.release.release import VerifyOutcome

    root = Path(shutil.copytree(example_repo, tmp_path / "proj", symlinks=True))

    def accepted(path: Path, variant) -> VerifyOutcome:
        outcome = _seams_warning(path, variant)
        return VerifyOutcome(
            outcome.status,
            outcome.message,
            tuple(
                CheckWarning(w.check, w.figure, w.message, accepted=True) for w in outcome.warnings
            ),
        )

    from czbuild.recipe import load_variants
    from czbuild.release.release import release
    from support.release_fakes import fake_options

    report = release(
        load_variants(project_dir=root),
        project_dir=root,
        dist_dir=root / "dist",
        options=fake_options(),
        verify=True,
        verifier=accepted,
    )
    assert len(report.artifacts) == len(load_variants(project_dir=root))
    assert not any("warnings" in n for n in report.notes)


def test_release_reads_the_scratch_builds_verification_record(tmp_path: Path) -> None:
    """The record the build's workers left in the stamp is the release's verification."""
    import io

    from czbuild.builder import BuildOptions, build
    from czbuild.release.release import recorded_outcome
    from support.build_fakes import BACKEND, make_project, with_fake

    variants = with_fake(make_project(tmp_path / "proj", {"a": [256]}), verify="warn")
    out = tmp_path / "out"
    options = BuildOptions(out_dir=out, backend=BACKEND, in_process=True)
    assert build(variants, options, out=io.StringIO()).ok
    outcome = recorded_outcome(out, variants[0])
    assert outcome is not None and outcome.status == "passed"
    assert [w.check for w in outcome.open_warnings] == ["tiling.seams"]
    (out / str(variants[0].output)).write_bytes(b"not what was verified")
    assert recorded_outcome(out, variants[0]) is None  # then the release verifies itself


def test_a_zeroed_sha256_in_the_lock_is_blamed_on_the_lock(example_repo: Path, tmp_path: Path):
    """Not on the "ZIP structure (host system, extra fields ...)" of the rebuilt artifact."""
    import shutil

    from czbuild.recipe import load_variants
    from czbuild.release.check import check_lock
    from support.release_fakes import fake_options

    root = Path(shutil.copytree(example_repo, tmp_path / "proj", symlinks=True))
    lock = root / "czbuild.lock"
    data = json.loads(lock.read_text())
    data["variants"]["denoise"]["artifact"]["sha256"] = "0" * 64
    lock.write_text(json.dumps(data, indent=2))
    variants = [v for v in load_variants(project_dir=root) if v.name == "denoise"]
    report = check_lock(variants, project_dir=root, options=fake_options())
    (result,) = report.results
    text = " ".join(d.message for d in result.differences)
    assert result.status == "differs"
    assert "is not a hash czbuild writes" in text and "czbuild.lock was edited" in text
    assert "host system" not in text


# --- a weight changed below the tolerance (issue 16 item 9) ------------------------------------


def _flip_one_weight_bit(artifact: Path) -> None:
    """Rewrite ``artifact`` with the lowest mantissa bit of one ONNX weight flipped."""
    import dataclasses

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from czbuild.formats.archive import write_czann
    from czbuild.formats.reader import read_artifact

    found = read_artifact(artifact)
    model = onnx.load_from_string(found.model_bytes)
    tensor = model.graph.initializer[0]
    weights = numpy_helper.to_array(tensor).copy()
    bits = weights.reshape(-1).view(np.uint32)
    bits[0] ^= 1
    tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
    assert np.abs(weights - numpy_helper.to_array(tensor)).max() == 0  # the flipped value kept
    metadata = dataclasses.replace(found.metadata, id=None)
    write_czann(artifact, metadata, model.SerializeToString(), found.license_bytes)


def test_one_flipped_weight_bit_fails_the_lock_digest(example_repo: Path, tmp_path: Path):
    import shutil

    from czbuild.release.locked import lock_digest

    root = Path(shutil.copytree(example_repo, tmp_path / "proj", symlinks=True))
    artifact = root / "build" / "denoise" / "default" / "denoise.czann"
    assert lock_digest(artifact, "denoise", root).status == "passed"
    _flip_one_weight_bit(artifact)
    found = lock_digest(artifact, "denoise", root)
    assert found.status == "failed" and found.figure == "model payload differs"
    assert "model payload (model.model) is not the one czbuild.lock records" in found.message
    (root / "czbuild.lock").unlink()
    missing = lock_digest(artifact, "denoise", root)
    assert missing.status == "skipped" and "cannot be detected" in missing.message


def test_verify_without_a_recipe_says_it_cannot_see_small_weight_changes(
    example_repo: Path,
) -> None:
    from support.cli import run_cli

    artifact = example_repo / "build" / "denoise" / "default" / "denoise.czann"
    result = run_cli("verify", str(artifact), "--json", cwd=example_repo)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["payload.digest"]["status"] == "skipped"
    assert "less than the tolerance cannot be detected" in checks["payload.digest"]["message"]


def test_release_verifies_nothing_in_process_when_the_build_left_records(
    tmp_path: Path, monkeypatch
) -> None:
    """No TensorFlow (nor its log noise) in the release process: the workers verified."""
    import io

    from czbuild.builder import BuildOptions, build
    from czbuild.release import release as release_module
    from support.build_fakes import BACKEND, make_project, with_fake

    variants = with_fake(make_project(tmp_path / "proj", {"a": [256, 512]}), verify="warn")
    out = tmp_path / "out"
    assert build(
        variants, BuildOptions(out_dir=out, backend=BACKEND, in_process=True), out=io.StringIO()
    ).ok

    def forbidden():
        raise AssertionError("verified again in the release process")

    monkeypatch.setattr(release_module, "default_verifier", forbidden)
    notes: list[str] = []
    outcomes = release_module._verify(variants, out, True, None, notes)
    assert {o.status for o in outcomes.values()} == {"passed"} and notes == []
    assert all(o.open_warnings for o in outcomes.values())
