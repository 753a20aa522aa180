"""czbuild release: refusals (dirty tree, stale lock, foreign dist), SHA256SUMS, release.json.

The bundled example project is built with the fake converter (no TensorFlow) inside a
temporary git repository, once per module; each test releases from its own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from czbuild.errors import BuildError, LockMismatchError, VerifyError
from czbuild.release.gitinfo import DirtyTreeError
from czbuild.release.lockfile import read_lock, update_lock
from czbuild.release.release import FAILED, VerifyOutcome, release
from support.release_fakes import (
    EXAMPLE_VARIANTS,
    MUTATE_ENV,
    cli,
    copy_example_project,
    fake_options,
    git,
    git_init,
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = copy_example_project(tmp_path_factory.mktemp("release") / "proj")
    (root / "README.md").write_text("example\n")
    with pytest.MonkeyPatch.context() as mp:
        result = cli(["build", "--project", str(root)], mp)
    assert result.exit_code == 0, result.output
    git_init(root)
    return root


@pytest.fixture()
def project(repo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(repo, tmp_path / "proj", symlinks=True))


def _variants(root: Path) -> list:
    from czbuild.recipe import load_variants

    return load_variants(project_dir=root)


def _release(root: Path, dist: Path | None = None, **kwargs):
    kwargs.setdefault("verify", False)
    return release(
        _variants(root),
        project_dir=root,
        dist_dir=dist or root / "dist",
        options=fake_options(),
        reference_dirs=[root / "build"],
        **kwargs,
    )


def test_release_writes_artifacts_sums_and_manifest(project: Path) -> None:
    report = _release(project)
    dist = project / "dist"
    files = sorted(p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file())
    lock = read_lock(project / "czbuild.lock")
    expected = [".czbuild-release", "SHA256SUMS", "release.json"]
    assert files == sorted([*expected, *(e.path for e in lock.entries.values())])
    check = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=dist,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(files) - 2  # all but SHA256SUMS and the marker
    manifest = json.loads((dist / "release.json").read_text())
    assert manifest["git"] == {
        "commit": git(project, "rev-parse", "HEAD").strip(),
        "tag": None,
        "dirty": False,
        "dirty_files": [],
    }
    assert [a["variant"] for a in manifest["artifacts"]] == sorted(
        EXAMPLE_VARIANTS, key=lambda n: lock.get(n).path
    )
    for artifact in manifest["artifacts"]:
        entry = lock.get(artifact["variant"])
        assert artifact["sha256"] == entry.sha256 and artifact["lock"] == "match"
        assert artifact["spec_digest"] == entry.spec_digest
        assert artifact["inputs"] == dict(entry.inputs)
    assert manifest["lock"]["ok"] is True and manifest["recipes"]["nuclei"] == "recipes/nuclei.yaml"
    text = (dist / "release.json").read_text()
    assert str(project) not in text and "/tmp" not in text  # no absolute paths
    assert report.notes == ("artifacts not verified (--no-verify)",)


def test_release_bytes_do_not_depend_on_where_it_runs(project: Path, tmp_path: Path) -> None:
    other = Path(shutil.copytree(project, tmp_path / "elsewhere" / "checkout", symlinks=True))
    _release(project)
    _release(other, tmp_path / "dist2")
    first = {
        p.relative_to(project / "dist"): p.read_bytes()
        for p in (project / "dist").rglob("*")
        if p.is_file()
    }
    second = {
        p.relative_to(tmp_path / "dist2"): p.read_bytes()
        for p in (tmp_path / "dist2").rglob("*")
        if p.is_file()
    }
    assert first == second


def test_the_tag_is_recorded(project: Path) -> None:
    git(project, "tag", "v1.0")
    report = _release(project)
    assert report.manifest["git"]["tag"] == "v1.0"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param(
            lambda p: (p / "recipes/nuclei.yaml").open("a").write("# a comment\n"),
            "recipes/nuclei.yaml",
            id="modified-recipe",
        ),
        pytest.param(
            lambda p: (p / "configs/preprocessing/extra.yaml").write_text("[]\n"),
            "configs/preprocessing/extra.yaml",
            id="untracked-config",
        ),
        pytest.param(
            lambda p: git(p, "rm", "-q", "--cached", "models/denoise.py"),
            "models/denoise.py",
            id="untracked-model-input",
        ),
    ],
)
def test_a_dirty_tree_is_refused_unless_allowed(project: Path, change, path: str) -> None:
    change(project)
    with pytest.raises(DirtyTreeError) as info:
        _release(project)
    assert path in str(info.value) and "--allow-dirty" in str(info.value)
    assert not (project / "dist").exists()
    report = _release(project, allow_dirty=True)
    assert report.manifest["git"]["dirty"] is True
    assert path in report.manifest["git"]["dirty_files"]
    assert any("--allow-dirty" in note for note in report.manifest["notes"])


def test_changes_outside_the_release_inputs_do_not_block(project: Path) -> None:
    (project / "README.md").write_text("changed\n")
    (project / "notes.txt").write_text("untracked\n")
    assert _release(project).manifest["git"]["dirty"] is False


def test_a_stale_lock_is_refused_unless_allowed(project: Path) -> None:
    lock = read_lock(project / "czbuild.lock")
    (project / "czbuild.lock").unlink()
    update_lock(project / "czbuild.lock", [e for n, e in lock.entries.items() if n != "denoise"])
    git(project, "commit", "-q", "-am", "drop an entry")
    with pytest.raises(LockMismatchError) as info:
        _release(project)
    assert "denoise has no entry in the lock file" in str(info.value)
    assert "--allow-stale-lock" in str(info.value)
    report = _release(project, allow_stale_lock=True)
    status = {a.variant: a.lock_status for a in report.artifacts}
    assert status["denoise"] == "missing" and status["nuclei@tile=128"] == "match"
    assert report.manifest["lock"]["ok"] is False


def test_an_artifact_that_differs_from_the_lock_is_refused(project: Path, monkeypatch) -> None:
    monkeypatch.setenv(MUTATE_ENV, "initializer")
    with pytest.raises(LockMismatchError) as info:
        _release(project)
    message = str(info.value)
    assert "nuclei@tile=128 (nuclei/tile=128/nuclei.czann)" in message
    assert "initializer W differs" in message and "--allow-stale-lock" in message
    report = _release(project, allow_stale_lock=True)
    assert {a.lock_status for a in report.artifacts} == {"differs", "match"}


def test_outside_git_the_release_says_so(tmp_path: Path, repo: Path) -> None:
    root = Path(shutil.copytree(repo, tmp_path / "proj", ignore=shutil.ignore_patterns(".git")))
    report = _release(root)
    assert report.manifest["git"] is None and not report.git.available
    assert any("no git commit recorded" in note for note in report.notes)


def test_a_foreign_dist_folder_is_refused_and_a_release_replaced(
    project: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(BuildError, match="is not a release czbuild wrote"):
        _release(project, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    dist = tmp_path / "dist"
    _release(project, dist)
    first = (dist / "release.json").read_bytes()
    _release(project, dist)  # a release czbuild wrote is replaced
    assert (dist / "release.json").read_bytes() == first
    (dist / "notes.txt").write_text("a user's file")
    with pytest.raises(BuildError, match=r"holds files czbuild did not write \(notes.txt\)"):
        _release(project, dist)
    assert (dist / "notes.txt").read_text() == "a user's file"


def test_verification_failures_refuse_the_release(project: Path) -> None:
    seen = []

    def verifier(path: Path, variant) -> VerifyOutcome:
        seen.append(variant.name)
        assert path.is_file()
        if variant.name == "legacy_seed":
            return VerifyOutcome(FAILED, "1 failed check(s): fidelity")
        return VerifyOutcome("passed", "ok")

    with pytest.raises(VerifyError, match="legacy_seed: 1 failed check"):
        _release(project, verify=True, verifier=verifier)
    assert sorted(seen) == EXAMPLE_VARIANTS and not (project / "dist").exists()


def test_without_the_verifier_the_release_notes_it(project: Path, monkeypatch) -> None:
    monkeypatch.setattr("czbuild.release.release.default_verifier", lambda: None)
    report = _release(project, verify=True)
    assert {a.verify.status for a in report.artifacts} == {"skipped"}
    assert "czbuild.verify is not available: artifacts not verified" in report.notes


def test_cli_release_and_its_refusal(project: Path, monkeypatch) -> None:
    (project / "recipes/denoise.yaml").open("a").write("# uncommitted\n")
    refused = cli(["release", "--project", str(project), "--no-verify"], monkeypatch)
    assert refused.exit_code == 1
    assert "uncommitted changes to release inputs: recipes/denoise.yaml" in refused.output
    done = cli(
        [
            "release",
            "--project",
            str(project),
            "--no-verify",
            "--allow-dirty",
            "--out",
            str(project / "out"),
        ],
        monkeypatch,
    )
    assert done.exit_code == 0, done.output
    assert "released  nuclei/tile=128/nuclei.czann  sha256 " in done.output
    assert "czbuild: released 7 artifact(s) to" in done.output
    assert (project / "out" / "SHA256SUMS").is_file()
