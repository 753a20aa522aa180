"""Verification inside builds: temporary file -> verify -> install, records, status, --no-verify.

Fast tests use the fake backend of :mod:`support.build_fakes`, which writes through the real
:func:`czbuild.builder.verification.install_verified` with a fake verifier; tests marked
``slow`` build real recipes with TensorFlow and the real verifier.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from czbuild.builder import BuildOptions, build, read_stamp, status
from czbuild.builder.stamps import report_path, state_dir
from czbuild.builder.verification import (
    ArtifactVerificationError,
    failure_summary,
    install_verified,
    report_record,
    stale_verifying_files,
    verifying_path,
)
from support.build_fakes import BACKEND, FAKE_CHECKS, make_project, respec, with_fake


def _build(variants, out: Path, **opts):
    stream = io.StringIO()
    report = build(
        variants, BuildOptions(out_dir=out, backend=BACKEND, in_process=True, **opts), out=stream
    )
    return report, stream.getvalue()


def _manifest(out: Path) -> dict[str, dict]:
    data = json.loads((out / "manifest.json").read_text())
    return {a["path"]: a for a in data["artifacts"]}


def _visible(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and ".czbuild" not in p.parts
    )


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, Path, list]:
    root, out = tmp_path / "proj", tmp_path / "out"
    return root, out, make_project(root, {"a": [256, 512], "b": [256]})


# --- the build layer with the fake backend -----------------------------------------------


def test_passed_verification_is_recorded_in_stamp_manifest_and_report(project) -> None:
    _, out, variants = project
    report, _ = _build(variants, out)
    assert report.ok and sorted(report.summary.built) == sorted(v.name for v in variants)
    manifest = _manifest(out)
    assert len(manifest) == 3
    for variant in variants:
        output = str(variant.output)
        record = manifest[output]["verification"]
        assert record["ok"] is True and record["path"] == output
        assert [c["name"] for c in record["checks"]] == list(FAKE_CHECKS)
        seen = record["checks"][0]["details"]["seen"]  # the verifier saw a hidden temporary
        assert seen.startswith(f".{Path(output).name}.verifying-") and seen.endswith(".tmp")
        assert read_stamp(out, output)["verification"] == record
        assert json.loads(report_path(out, output).read_text()) == record
    assert all(s.up_to_date and s.verified for s in status(variants, out))
    assert not [p for p in out.rglob("*verifying*")]


def test_failed_verification_fails_only_that_variant_and_installs_nothing(
    project, monkeypatch
) -> None:
    _, out, variants = project
    monkeypatch.chdir(out.parent)  # the message names the report relative to the cwd
    bad = with_fake([variants[1]], verify="fail")[0]
    report, text = _build([variants[0], bad, variants[2]], out)
    assert not report.ok
    assert sorted(report.summary.built) == sorted([variants[0].name, variants[2].name])
    message = report.summary.failed[bad.name]
    assert "\n" not in message
    assert "verification failed: tiling.seams (max seam error 0.5)" in message
    assert message.startswith(f"recipes/{bad.recipe}.yaml: ")
    kept = report_path(out, str(bad.output))
    assert message.endswith(f"; full report: out/.czbuild/reports/{bad.output}.verify.json")
    assert json.loads(kept.read_text())["ok"] is False
    assert not (out / str(bad.output)).exists()
    assert str(bad.output) not in _manifest(out)
    assert read_stamp(out, str(bad.output)) is None
    assert _visible(out) == sorted(
        [str(variants[0].output), str(variants[2].output), "manifest.json"]
    )
    assert f"FAILED   {bad.name}" in text


def test_debug_adds_each_failed_check_message(project) -> None:
    _, out, variants = project
    bad = with_fake([variants[0]], verify="fail")
    report, _ = _build(bad, out, debug=True)
    message = report.summary.failed[bad[0].name]
    assert message.splitlines()[1] == "tiling.seams: tiled inference differs (fake)"


def test_failed_rebuild_keeps_the_previous_artifact(project) -> None:
    _, out, variants = project
    assert _build(variants, out)[0].ok
    target = out / str(variants[0].output)
    before = (target.read_bytes(), target.stat().st_ino)
    changed = respec(variants[0], tile=999)
    bad = with_fake([changed], verify="fail")[0]
    report, _ = _build([bad], out)
    assert bad.name in report.summary.failed
    assert (target.read_bytes(), target.stat().st_ino) == before
    assert str(bad.output) not in _manifest(out)
    (state,) = status([bad], out)
    assert not state.up_to_date and [r.kind for r in state.reasons] == ["never-built"]


def test_no_verify_builds_unverified_and_status_says_so(project) -> None:
    _, out, variants = project
    report, _ = _build(variants, out, verify=False)
    assert report.ok
    for variant in variants:
        assert read_stamp(out, str(variant.output))["verification"] is None
        assert _manifest(out)[str(variant.output)]["verification"] is None
        assert not report_path(out, str(variant.output)).exists()
    states = status(variants, out)
    assert all(s.up_to_date and s.verified is False for s in states)
    assert all(s.to_json()["verified"] is False for s in states)
    # A verifying build leaves them up to date but says they are not verified ...
    report, text = _build(variants, out)
    assert report.summary.built == [] and sorted(report.unverified) == sorted(
        v.name for v in variants
    )
    assert "czbuild: note: 3 up-to-date artifact(s) not verified (built with --no-verify)" in text
    # ... and --force rebuilds and verifies them.
    report, text = _build(variants, out, force=True)
    assert len(report.summary.built) == 3 and "note:" not in text
    assert all(s.verified for s in status(variants, out))


def test_no_verify_does_not_run_a_failing_verifier(project) -> None:
    _, out, variants = project
    report, _ = _build(with_fake(variants, verify="fail"), out, verify=False)
    assert report.ok


def test_stale_verifying_temporaries_are_removed_before_a_rebuild(project) -> None:
    _, out, variants = project
    target = out / str(variants[0].output)
    target.parent.mkdir(parents=True)
    stale = [
        target.with_name(f".{target.name}.verifying-999.tmp"),
        target.with_name(f"..{target.name}.verifying-999.tmp.0a1b2c.tmp"),
    ]
    for path in stale:
        path.write_bytes(b"half")
    assert _build(variants[:1], out)[0].ok
    assert not any(p.exists() for p in stale)


# --- czbuild.builder.verification ----------------------------------------------------------


def _record(ok: bool) -> dict:
    checks = [
        {"name": "fidelity", "status": "passed", "figure": "max abs diff 1e-07"},
        {
            "name": "tiling.seams",
            "status": "passed" if ok else "failed",
            "figure": "max seam error 5e-05",
        },
        {"name": "tiling.min_overlap", "status": "passed", "figure": "80 px"},
    ]
    return {"ok": ok, "checks": checks}


def test_install_verified_replaces_only_after_a_pass(tmp_path: Path) -> None:
    out = tmp_path / "m.czann"
    out.write_bytes(b"old good artifact")
    seen: list[Path] = []

    def write(path: Path) -> str:
        seen.append(path)
        path.write_bytes(b"new artifact")
        return "written"

    with pytest.raises(ArtifactVerificationError) as info:
        install_verified(out, write, lambda path: _record(False))
    assert info.value.report["ok"] is False and info.value.exit_code == 1
    assert out.read_bytes() == b"old good artifact"
    assert seen == [verifying_path(out)] and not seen[0].exists()

    result, record = install_verified(out, write, lambda path: _record(True))
    assert (result, record["ok"], out.read_bytes()) == ("written", True, b"new artifact")
    assert not verifying_path(out).exists()


def test_install_verified_cleans_up_when_the_verifier_crashes(tmp_path: Path) -> None:
    out = tmp_path / "m.czann"

    def boom(path: Path) -> dict:
        raise RuntimeError("verifier crashed")

    with pytest.raises(RuntimeError):
        install_verified(out, lambda p: p.write_bytes(b"x"), boom)
    assert list(tmp_path.iterdir()) == []


def test_without_verifier_the_final_name_is_written_directly(tmp_path: Path) -> None:
    out = tmp_path / "m.czann"
    seen: list[Path] = []
    assert install_verified(out, lambda p: seen.append(p), None) == (None, None)
    assert seen == [out]


def test_verifying_path_is_hidden_and_matches_the_stale_patterns(tmp_path: Path) -> None:
    out = tmp_path / "r" / "tile=256" / "nuclei.czann"
    tmp = verifying_path(out)
    assert tmp.parent == out.parent and tmp.name.startswith(".nuclei.czann.verifying-")
    assert not tmp.name.endswith((".czann", ".czmodel"))
    out.parent.mkdir(parents=True)
    tmp.write_bytes(b"")
    (out.parent / "other.czann").write_bytes(b"")
    assert stale_verifying_files(out) == [tmp]


def test_failure_summary_names_checks_and_the_overlap_that_would_pass() -> None:
    assert failure_summary(_record(False)) == (
        "verification failed: tiling.seams (max seam error 5e-05); smallest overlap within "
        "tolerance: 80 px"
    )
    record = {"ok": False, "checks": [{"name": "fidelity", "status": "failed", "figure": None}]}
    assert failure_summary(record) == "verification failed: fidelity"


def test_report_record_is_relative_and_without_pictures(tmp_path: Path) -> None:
    tmp = tmp_path / "out" / "r" / ".r.czann.verifying-12.tmp"
    project = tmp_path / "proj"
    fake = SimpleNamespace(
        to_dict=lambda: {
            "path": str(tmp),
            "ok": True,
            "images": ["input"],
            "checks": [
                {
                    "name": "fidelity",
                    "message": f"compared {tmp.name} with {project}{os.sep}models/m.keras",
                    "details": {"file": str(tmp)},
                }
            ],
        }
    )
    record = report_record(
        fake,
        output="r/default/r.czann",
        temporary=tmp,
        settings={"tolerance": 1e-5},
        project_dir=project,
    )
    assert record["path"] == "r/default/r.czann" and "images" not in record
    assert record["settings"] == {"tolerance": 1e-5}
    assert record["checks"][0]["message"] == "compared r.czann with models/m.keras"
    assert record["checks"][0]["details"]["file"] == "r/default/r.czann"
    assert str(tmp_path) not in json.dumps(record)


def test_state_dir_holds_the_reports(tmp_path: Path) -> None:
    assert report_path(tmp_path, "a/b/c.czann") == (
        state_dir(tmp_path) / "reports" / "a/b/c.czann.verify.json"
    )
    with pytest.raises(ValueError):
        report_path(tmp_path, "../escape.czann")


# --- real conversions and the real verifier (TensorFlow) ---------------------------------


def _czbuild(*args: str, cwd: Path, timeout: float = 900):
    import subprocess
    import sys

    from support.build_fakes import worker_env

    return subprocess.run(
        [sys.executable, "-m", "czbuild", *args],
        cwd=cwd,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_real_builds_verify_fail_on_seams_and_skip_with_no_verify(tmp_path: Path) -> None:
    from support.build_fakes import make_recipe_project

    project = make_recipe_project(tmp_path / "proj", n_recipes=2, tiles=(32, 64))
    out = project / "build"
    proc = _czbuild("build", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = _manifest(out)
    assert len(manifest) == 4
    for entry in manifest.values():
        record = entry["verification"]
        checks = {c["name"]: c["status"] for c in record["checks"]}
        assert record["ok"] and record["path"] == entry["path"]
        assert checks["fidelity"] == checks["tiling.seams"] == "passed"
        assert {"container.hygiene", "payload.model", "semantics"} <= set(checks)
        assert (
            record["settings"]["fidelity_tolerance"] == record["settings"]["seam_tolerance"] == 1e-5
        )
    assert str(tmp_path) not in (out / "manifest.json").read_text()

    # Declared overlap 0 for a model with a 3x3 convolution: the seams fail, deterministically.
    recipe = project / "recipes" / "r01.yaml"
    recipe.write_text(recipe.read_text().replace("min_overlap: [8, 8]", "min_overlap: [0, 0]"))
    old = {p: p.read_bytes() for p in out.glob("r01/*/r01.czann")}
    proc = _czbuild("build", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for tile in (32, 64):
        failed = next(i for i, ln in enumerate(lines) if ln.startswith(f"FAILED   r01@tile={tile}"))
        line = lines[failed + 1]
        assert "recipes/r01.yaml: verification failed: tiling.seams (max seam error" in line
        assert "smallest overlap within tolerance: 2 px" in line
        assert f"full report: build/.czbuild/reports/r01/tile={tile}/r01.czann.verify.json" in line
        kept = json.loads(
            (out / f".czbuild/reports/r01/tile={tile}/r01.czann.verify.json").read_text()
        )
        assert not kept["ok"]
    assert "czbuild: 0 built, 2 up to date, 2 failed" in proc.stdout
    assert {p: p.read_bytes() for p in out.glob("r01/*/r01.czann")} == old  # untouched
    assert not [p for p in out.rglob("*") if "verifying" in p.name or p.suffix == ".tmp"]
    assert set(_manifest(out)) == {"r00/tile=32/r00.czann", "r00/tile=64/r00.czann"}

    proc = _czbuild("build", "--no-verify", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "czbuild: 2 built, 2 up to date" in proc.stdout
    assert _manifest(out)["r01/tile=32/r01.czann"]["verification"] is None
    proc = _czbuild("status", cwd=project)
    assert "up to date   r01@tile=32  (r01/tile=32/r01.czann)  [not verified]" in proc.stdout
    assert "up to date   r00@tile=32  (r00/tile=32/r00.czann)\n" in proc.stdout
    proc = _czbuild("build", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "czbuild: 0 built, 4 up to date" in proc.stdout
    assert "note: 2 up-to-date artifact(s) not verified" in proc.stdout
