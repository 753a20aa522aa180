"""czbuild.lock through the CLI: written by `build`, enforced by `build --locked` and `check`.

The bundled example project (recipes/, configs/, models/) is built with the fake converter of
support.release_fakes (real CZANN/CZMODEL files, no TensorFlow), once per module; each test works
on its own copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from czbuild.release.collect import entry_from_artifact
from czbuild.release.lockfile import NUMERIC, read_lock, update_lock
from support.release_fakes import EXAMPLE_VARIANTS, MUTATE_ENV, cli, copy_example_project

ARTIFACT = "nuclei/tile=128/nuclei.czann"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = copy_example_project(tmp_path_factory.mktemp("check") / "proj")
    with pytest.MonkeyPatch.context() as mp:
        result = cli(["build", "--project", str(root)], mp)
    assert result.exit_code == 0, result.output
    assert "czbuild: updated czbuild.lock: 7 added" in result.output
    return root


@pytest.fixture()
def project(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "proj", symlinks=True))


def _lock_bytes(root: Path) -> bytes:
    return (root / "czbuild.lock").read_bytes()


def test_build_writes_an_entry_per_variant(built: Path) -> None:
    lock = read_lock(built / "czbuild.lock")
    assert list(lock.entries) == EXAMPLE_VARIANTS
    nuclei = lock.get("nuclei@tile=128")
    assert nuclei.path == ARTIFACT and nuclei.payload == "onnx"
    assert [m.name for m in nuclei.members] == ["model.json", "model.model", "license.txt"]
    assert set(nuclei.inputs) == {"models/nuclei.py", "models/LICENSE.txt"}
    assert {"czbuild", "tensorflow", "keras", "tf2onnx", "onnx", "python"} <= set(nuclei.toolchain)
    legacy = lock.get("legacy_seed")
    assert legacy.payload == "savedmodel_zip" and legacy.members[-1].name.startswith("modelid=")
    manifest = json.loads((built / "build" / "manifest.json").read_text())
    assert {a["variant"]: a["sha256"] for a in manifest["artifacts"]} == {
        name: entry.sha256 for name, entry in lock.entries.items()
    }


def test_noop_build_leaves_the_lock_alone(project: Path, monkeypatch) -> None:
    before = (project / "czbuild.lock").stat()
    result = cli(["build", "--project", str(project)], monkeypatch)
    assert result.exit_code == 0 and "czbuild.lock" not in result.output
    after = (project / "czbuild.lock").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_partial_build_updates_only_its_entries(project: Path, monkeypatch) -> None:
    old = read_lock(project / "czbuild.lock")
    with open(project / "models" / "nuclei.py", "a") as handle:
        handle.write("\n# retrained\n")
    result = cli(["build", "nuclei", "--project", str(project)], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "3 changed (nuclei@tile=128, nuclei@tile=256, nuclei@tile=512)" in result.output
    new = read_lock(project / "czbuild.lock")
    assert new.get("denoise") == old.get("denoise")
    assert new.get("nuclei@tile=128").sha256 != old.get("nuclei@tile=128").sha256


def test_vanished_variants_leave_only_on_a_full_build(project: Path, monkeypatch) -> None:
    recipe = project / "recipes" / "nuclei.yaml"
    recipe.write_text(recipe.read_text().replace("tile: [128, 256, 512]", "tile: [128, 256]"))
    partial = cli(["build", "nuclei", "--project", str(project)], monkeypatch)
    assert partial.exit_code == 0, partial.output
    assert "nuclei@tile=512" in read_lock(project / "czbuild.lock").entries
    full = cli(["build", "--project", str(project)], monkeypatch)
    assert "1 removed (nuclei@tile=512)" in full.output, full.output
    assert "nuclei@tile=512" not in read_lock(project / "czbuild.lock").entries


def test_a_failed_variant_keeps_its_entry_and_nothing_is_removed(
    project: Path, monkeypatch
) -> None:
    old = read_lock(project / "czbuild.lock")
    recipe = project / "recipes" / "nuclei.yaml"
    recipe.write_text(recipe.read_text().replace("tile: [128, 256, 512]", "tile: [128, 256]"))
    for name in ("nuclei.py", "legacy_seed.py"):
        with open(project / "models" / name, "a") as handle:
            handle.write("\n# retrained\n")
    result = cli(
        ["build", "--project", str(project)], monkeypatch, env={MUTATE_ENV: "fail:legacy_seed"}
    )
    assert result.exit_code == 1 and "FAILED   legacy_seed" in result.output
    assert "2 changed (nuclei@tile=128, nuclei@tile=256)" in result.output, result.output
    new = read_lock(project / "czbuild.lock")
    assert new.get("legacy_seed") == old.get("legacy_seed")
    assert "nuclei@tile=512" in new.entries  # removal waits for a full build without failures


def test_overrides_never_touch_the_lock(project: Path, monkeypatch) -> None:
    before = _lock_bytes(project)
    result = cli(
        ["build", "nuclei", "metadata.model_name=Other", "--project", str(project)], monkeypatch
    )
    assert result.exit_code == 0, result.output
    assert "czbuild.lock not updated: command-line overrides" in result.output
    assert _lock_bytes(project) == before


def test_check_passes_on_an_unchanged_tree(project: Path, monkeypatch) -> None:
    artifact = project / "build" / ARTIFACT
    before = artifact.stat().st_mtime_ns
    result = cli(["check", "--project", str(project)], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "czbuild: 7 match (7 variants, czbuild.lock)" in result.output
    assert artifact.stat().st_mtime_ns == before


def test_check_names_a_tampered_artifact_in_the_build_folder(project: Path, monkeypatch) -> None:
    """Hostile-input corpus (issue 16 #10): a rebuild that matches must not hide the file on disk."""
    import zipfile

    artifact = project / "build" / ARTIFACT
    with zipfile.ZipFile(artifact) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(artifact, "w") as zf:
        for info, data in members:
            if info.filename == "model.json":
                data = data.replace(b'"Background"', b'"Backgr0und"')
            zf.writestr(info, data)
    result = cli(["check", "--project", str(project)], monkeypatch)
    assert result.exit_code != 0, result.output
    assert f"MODIFIED nuclei@tile=128  ({ARTIFACT})" in result.output
    assert "differs from the lock" in result.output and "Classes" in result.output
    assert "czbuild: 6 match, 1 modified (7 variants, czbuild.lock)" in result.output


def test_check_keeps_the_report_of_a_rebuild_that_fails_verification(
    project: Path, monkeypatch
) -> None:
    """The failure line names a report that exists after check removed its scratch build."""
    monkeypatch.chdir(project)
    result = cli(
        ["check", "denoise", "--project", str(project)],
        monkeypatch,
        env={MUTATE_ENV: "verify-fail:denoise"},
    )
    assert result.exit_code != 0, result.output
    lines = [x for x in result.output.splitlines() if "verification failed" in x]
    assert len(lines) == 2, result.output  # the build's progress line and check's summary
    for line in lines:
        assert "tiling.seams (max seam error 0.5)" in line
        assert not line.rstrip().endswith(";"), line
        report = Path(line.split("full report: ")[1].split()[0].rstrip(";)"))
        assert report.is_file(), line  # kept, not in the deleted scratch folder
        assert report.resolve().is_relative_to(project / "build" / ".czbuild" / "check-reports")
    assert json.loads(report.read_text())["ok"] is False
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("czbuild: error: 1 of 1 variants do not match czbuild.lock"), last
    assert "denoise (failed); fix the failed rebuilds" in last and not last.endswith(";"), last


def test_locked_build_passes_and_installs_the_checked_artifacts(project: Path, monkeypatch) -> None:
    from czbuild.builder import status

    shutil.rmtree(project / "build")
    before = _lock_bytes(project)
    result = cli(["build", "--locked", "--project", str(project)], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "7 artifact(s) match czbuild.lock; installed" in result.output
    assert _lock_bytes(project) == before
    from czbuild.recipe import load_variants

    states = status(load_variants(project_dir=project), project / "build")
    assert all(s.up_to_date for s in states), [s.to_json() for s in states]
    entry = read_lock(project / "czbuild.lock").get("nuclei@tile=128")
    import hashlib

    assert hashlib.sha256((project / "build" / ARTIFACT).read_bytes()).hexdigest() == entry.sha256


def test_locked_build_fails_naming_the_initializer(project: Path, monkeypatch) -> None:
    before = _lock_bytes(project)
    artifact = (project / "build" / ARTIFACT).read_bytes()
    result = cli(
        ["build", "--locked", "nuclei", "--project", str(project)],
        monkeypatch,
        env={MUTATE_ENV: "initializer"},
    )
    assert result.exit_code == 1, result.output
    assert "DIFFERS  nuclei@tile=128  (nuclei/tile=128/nuclei.czann)" in result.output
    assert "member model.model: initializer W differs: max abs diff 0.5" in result.output
    assert "compared field by field with the previous artifact" in result.output
    assert "3 of 3 variants do not match czbuild.lock" in result.output
    assert _lock_bytes(project) == before  # neither the lock ...
    assert (project / "build" / ARTIFACT).read_bytes() == artifact  # ... nor build/ changed


def _relock_mutated(project: Path) -> None:
    """Rewrite one member of a built artifact and lock that file (as if built elsewhere)."""
    import zipfile

    path = project / "build" / ARTIFACT
    with zipfile.ZipFile(path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    doc = json.loads(members[0][1])
    doc["Type"] = "MultiClassSemanticSegmentation"
    members[0] = (members[0][0], json.dumps(doc, separators=(", ", ": ")).encode())
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    old = read_lock(project / "czbuild.lock").get("nuclei@tile=128")
    entry = entry_from_artifact(
        path,
        variant=old.variant,
        recipe=old.recipe,
        recipe_file=old.recipe_file,
        spec_digest=old.spec_digest,
        inputs=old.inputs,
        toolchain=old.toolchain,
        relative_path=old.path,
    )
    update_lock(project / "czbuild.lock", [entry])


def test_check_names_the_mutated_metadata_field(project: Path, monkeypatch) -> None:
    _relock_mutated(project)
    result = cli(["check", "nuclei", "--project", str(project)], monkeypatch)
    assert result.exit_code == 1, result.output
    assert (
        'member model.json: metadata field Type differs: "MultiClassSemanticSegmentation" '
        '(lock) vs "SingleClassSemanticSegmentation" (rebuilt)'
    ) in result.output
    assert "match    nuclei@tile=256" in result.output


def test_without_the_previous_artifact_the_member_hashes_speak(project: Path, monkeypatch) -> None:
    _relock_mutated(project)
    shutil.rmtree(project / "build")
    result = cli(["check", "nuclei", "--project", str(project)], monkeypatch)
    assert result.exit_code == 1, result.output
    assert "1 member(s) differ: model.json" in result.output
    assert "- member model.json: content differs (" in result.output
    assert "only the lock's member hashes could be compared" in result.output


def test_a_timestamp_only_difference_is_explained(project: Path, monkeypatch) -> None:
    result = cli(
        ["check", "denoise", "--project", str(project)],
        monkeypatch,
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert result.exit_code == 1, result.output
    assert "timestamps only: every member's content is identical" in result.output
    assert (
        "members model.json, model.model, license.txt: entry time differs: 1980-01-01 "
        "00:00:00 (lock) vs 2023-11-14 22:13:20 (rebuilt)"
    ) in result.output


def test_stale_and_missing_entries_are_named_not_rebuilt(project: Path, monkeypatch) -> None:
    recipe = project / "recipes" / "denoise.yaml"
    recipe.write_text(recipe.read_text().replace("model_name: Denoise", "model_name: Denoiser"))
    lock = read_lock(project / "czbuild.lock")
    (project / "czbuild.lock").unlink()
    update_lock(
        project / "czbuild.lock", [e for n, e in lock.entries.items() if n != "legacy_seed"]
    )
    result = cli(
        ["check", "denoise", "legacy_seed", "--project", str(project), "--json"], monkeypatch
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    by_name = {v["variant"]: v for v in report["variants"]}
    assert by_name["denoise"]["status"] == "stale"
    assert (
        "the resolved recipe changed since the lock was written" in by_name["denoise"]["headline"]
    )
    assert by_name["legacy_seed"]["status"] == "missing"
    assert by_name["denoise"]["actual_sha256"] is None  # not rebuilt


def test_locked_refuses_overrides(project: Path, monkeypatch) -> None:
    result = cli(
        ["build", "--locked", "nuclei", "tile=256", "--project", str(project)], monkeypatch
    )
    assert result.exit_code == 2 and "command-line overrides" in result.output


@pytest.fixture()
def numeric_project(tmp_path: Path, monkeypatch) -> Path:
    """A project built while SavedModel payloads are declared only numerically reproducible."""
    monkeypatch.setattr("czbuild.release.policy.NUMERIC_PAYLOADS", frozenset({"savedmodel_zip"}))
    root = copy_example_project(tmp_path / "proj")
    result = cli(["build", "legacy_seed", "--project", str(root)], monkeypatch)
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("ok", [True, False], ids=["within-tolerance", "beyond-tolerance"])
def test_numeric_member_falls_back_to_running_the_payloads(
    numeric_project: Path, monkeypatch, ok: bool
) -> None:
    from czbuild.release.numeric import NumericResult

    entry = read_lock(numeric_project / "czbuild.lock").get("legacy_seed")
    assert [m.reproducible for m in entry.members] == ["bytes", NUMERIC, "bytes", "bytes"]
    calls = []

    def fake_compare(expected: bytes, actual: bytes, **kwargs) -> NumericResult:
        calls.append(expected != actual)
        diff = 1e-7 if ok else 0.3
        return NumericResult(
            ok,
            diff,
            1e-5,
            2,
            (1, 256, 256, 1),
            f"{'functionally identical' if ok else 'NOT functionally identical'} "
            f"within tol 1e-05: max abs diff {diff:g}",
        )

    monkeypatch.setattr("czbuild.release.numeric.compare_payloads", fake_compare)
    result = cli(
        ["check", "legacy_seed", "--project", str(numeric_project)],
        monkeypatch,
        env={MUTATE_ENV: "savedmodel"},
    )
    assert calls == [True]
    assert "member names embed the model Id, which differs" in result.output
    assert "SavedModel file saved_model.pb differs" in result.output
    if ok:
        assert result.exit_code == 0, result.output
        assert "numeric  legacy_seed" in result.output
        assert "functionally identical within tol 1e-05" in result.output
    else:
        assert result.exit_code == 1
        assert "DIFFERS  legacy_seed" in result.output


def test_numeric_member_without_previous_artifact_fails_with_a_hint(
    numeric_project: Path, monkeypatch
) -> None:
    shutil.rmtree(numeric_project / "build")
    result = cli(
        ["check", "legacy_seed", "--project", str(numeric_project)],
        monkeypatch,
        env={MUTATE_ENV: "savedmodel"},
    )
    assert result.exit_code == 1
    assert "are only numerically reproducible" in result.output


def test_a_byte_member_difference_never_falls_back(numeric_project: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        "czbuild.release.numeric.compare_payloads",
        lambda *a, **k: pytest.fail("numeric comparison must not run"),
    )
    result = cli(
        ["check", "legacy_seed", "--project", str(numeric_project)],
        monkeypatch,
        env={MUTATE_ENV: "model_name"},
    )
    assert result.exit_code == 1 and "metadata field ModelName differs" in result.output


def test_a_full_check_reports_entries_of_vanished_variants(project: Path, monkeypatch) -> None:
    recipe = project / "recipes" / "nuclei.yaml"
    recipe.write_text(recipe.read_text().replace("tile: [128, 256, 512]", "tile: [128, 256]"))
    partial = cli(["check", "denoise", "--project", str(project)], monkeypatch)
    assert partial.exit_code == 0 and "no recipe defines" not in partial.output
    full = cli(["check", "--project", str(project)], monkeypatch)
    assert full.exit_code == 0, full.output
    assert (
        "note: czbuild.lock has entries of variants no recipe defines any more: nuclei@tile=512"
    ) in full.output


@pytest.mark.parametrize(("delta", "ok"), [(0.0, True), (0.25, False)], ids=["same", "changed"])
def test_numeric_comparison_of_onnx_payloads(delta: float, ok: bool) -> None:
    import numpy as np

    from czbuild.release.numeric import compare_payloads
    from support.release_fakes import onnx_payload

    weights = np.array([0.5, 0.25], np.float32)
    result = compare_payloads(
        onnx_payload(weights, 16, 16), onnx_payload(weights + np.float32(delta), 16, 16), seed=3
    )
    assert result.ok is ok and result.input_shape == (1, 16, 16, 1)
    if ok:
        assert result.max_abs_diff == 0.0
    else:  # inputs are uniform in [0, 1): the output moves by up to delta
        assert 0.1 < result.max_abs_diff <= delta
    assert ("functionally identical" if ok else "NOT functionally identical") in result.message
