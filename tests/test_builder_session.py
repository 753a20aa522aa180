"""Incremental builds with a fake converter: what rebuilds, what does not, and what is recorded."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from czbuild.builder import BuildOptions, build, clean, iter_stamps, status, toolchain
from czbuild.builder.manifest import manifest_path
from czbuild.builder.pool import InProcessExecutor
from support.build_fakes import BACKEND, make_project, respec, with_fake, worker_env


def _build(variants, out: Path, *, executor=None, **opts):
    stream = io.StringIO()
    options = BuildOptions(out_dir=out, backend=BACKEND, in_process=executor is None, **opts)
    report = build(variants, options, out=stream, executor=executor)
    return report, stream.getvalue()


def _loads(project: Path) -> list[str]:
    log = project / "loads.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture()
def project(tmp_path: Path):
    root = tmp_path / "proj"
    variants = make_project(root, {"a": [256, 512, 768], "b": [256]})
    return root, variants, tmp_path / "out"


def test_first_build_writes_artifacts_stamps_and_manifest(project) -> None:
    _root, variants, out = project
    report, text = _build(variants, out)
    assert report.ok and sorted(report.summary.built) == sorted(v.name for v in variants)
    manifest = json.loads(manifest_path(out).read_text())
    assert [a["path"] for a in manifest["artifacts"]] == sorted(str(v.output) for v in variants)
    for entry in manifest["artifacts"]:
        data = (out / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert set(entry["members"]) == {"model.json", "model.model"}
        assert {i["role"] for i in entry["inputs"]} == {"model", "licence"}
        assert entry["toolchain"]["czbuild"] == toolchain.czbuild_version()
    assert len(iter_stamps(out)) == 4
    assert "start    a@tile=256" in text and "built    a@tile=256" in text
    assert "czbuild: 4 built, 0 up to date, 0 failed" in text


def test_second_build_is_a_no_op(project) -> None:
    root, variants, out = project
    _build(variants, out)
    loads = _loads(root)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.czann")}
    report, text = _build(variants, out)
    assert report.summary.built == [] and len(report.summary.up_to_date) == 4
    assert _loads(root) == loads
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.czann")} == before
    assert "start" not in text


def test_no_op_build_reads_the_stamps_for_the_manifest_once(project, monkeypatch) -> None:
    """The manifest task's check suffices; the closing refresh runs only after stamp changes."""
    from czbuild.builder import manifest

    _root, variants, out = project
    _build(variants, out)
    renders: list[object] = []
    real = manifest.render_manifest

    def counting(*args, **kwargs):
        renders.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(manifest, "render_manifest", counting)
    monkeypatch.setattr("czbuild.builder.tasks.render_manifest", counting)
    _build(variants, out)
    assert len(renders) == 1
    (out / str(variants[0].output)).unlink()  # rebuilt: the manifest is refreshed at the end
    report, _ = _build(variants, out)
    assert report.summary.built == [variants[0].name] and len(renders) > 2


def test_touching_inputs_rebuilds_nothing(project) -> None:
    root, variants, out = project
    _build(variants, out)
    for path in [root / "models/a.bin", root / "LICENSE", root / "recipes/a.yaml"]:
        os.utime(path)
    report, _ = _build(variants, out)
    assert report.summary.built == []


def test_changed_model_bytes_rebuild_only_its_variants(project) -> None:
    root, variants, out = project
    _build(variants, out)
    (root / "models/a.bin").write_bytes(b"retrained weights")
    stale = {
        s.variant: [r.message for r in s.reasons] for s in status(variants, out) if not s.up_to_date
    }
    assert stale == {f"a@tile={t}": ["model changed: models/a.bin"] for t in (256, 512, 768)}
    report, _ = _build(variants, out)
    assert sorted(report.summary.built) == sorted(stale)


def test_spec_change_rebuilds_that_variant_with_reason(project) -> None:
    _root, variants, out = project
    _build(variants, out)
    changed = respec(variants[0], metadata={"classes": ("x", "y")})
    new_variants = [changed, *variants[1:]]
    (st,) = [s for s in status(new_variants, out) if not s.up_to_date]
    assert st.variant == changed.name
    assert [r.kind for r in st.reasons] == ["spec", "spec"]
    assert 'metadata.classes[0] changed: "bg" -> "x"' in st.reasons[0].message
    report, _ = _build(new_variants, out)
    assert report.summary.built == [changed.name]


def test_czbuild_version_change_rebuilds_everything(project, monkeypatch) -> None:
    _root, variants, out = project
    _build(variants, out)
    monkeypatch.setattr(toolchain, "czbuild_version", lambda: "99.0.0")
    reasons = {r.message for s in status(variants, out) for r in s.reasons}
    assert reasons == {
        f"czbuild version changed: {toolchain._dist_version('czbuild')} -> 99.0.0"
    } or all("czbuild version changed" in r for r in reasons)
    report, _ = _build(variants, out)
    assert len(report.summary.built) == 4


def test_source_date_epoch_change_rebuilds_with_the_reason(project, monkeypatch) -> None:
    _root, variants, out = project
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    _build(variants, out)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    messages = {r.message for s in status(variants, out) for r in s.reasons}
    assert messages == {
        "zip entry time (SOURCE_DATE_EPOCH) changed: default -> 2023-11-14 22:13:20"
    }
    report, _ = _build(variants, out)
    assert len(report.summary.built) == 4
    assert all(s.up_to_date for s in status(variants, out))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "315532800")  # 1980-01-01: the default again
    assert not any(s.up_to_date for s in status(variants, out))


@pytest.mark.parametrize("damage", ["delete", "modify"])
def test_missing_or_modified_output_is_rebuilt(project, damage) -> None:
    _root, variants, out = project
    _build(variants, out)
    target = out / str(variants[1].output)
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(b"edited by hand")
    report, _ = _build(variants, out)
    assert report.summary.built == [variants[1].name]
    manifest = json.loads(manifest_path(out).read_text())
    entry = next(a for a in manifest["artifacts"] if a["path"] == str(variants[1].output))
    assert entry["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_force_rebuilds_up_to_date_artifacts(project) -> None:
    _root, variants, out = project
    _build(variants, out)
    report, _ = _build(variants, out, force=True)
    assert len(report.summary.built) == 4


def _failing(variants, index: int, message: str = "tile 768 is not divisible by 16"):
    bad = with_fake([variants[index]], fail=message)[0]
    return [*variants[:index], bad, *variants[index + 1 :]]


def test_failing_variant_fails_alone_with_its_error(project) -> None:
    _root, variants, out = project
    variants = _failing(variants, 2)
    report, text = _build(variants, out)
    assert not report.ok and report.exit_code != 0
    assert list(report.summary.failed) == ["a@tile=768"]
    assert "a.yaml: tile 768 is not divisible by 16" in report.summary.failed["a@tile=768"]
    assert "FAILED   a@tile=768" in text and "tile 768 is not divisible" in text
    assert len(report.summary.built) == 3
    assert not (out / str(variants[2].output)).exists()
    assert len(json.loads(manifest_path(out).read_text())["artifacts"]) == 3
    # the next run retries only the failed one
    report, _ = _build(variants, out)
    assert list(report.summary.failed) == ["a@tile=768"] and report.summary.built == []


def test_no_continue_stops_after_first_failure(project) -> None:
    _root, variants, out = project
    variants = _failing(variants, 0)
    stream = io.StringIO()
    report = build(
        variants,
        BuildOptions(out_dir=out, backend=BACKEND, in_process=True),
        out=stream,
        keep_going=False,
    )
    assert list(report.summary.failed) == [variants[0].name]
    assert report.summary.not_run == 3
    assert "3 not run" in stream.getvalue()


def test_variants_of_one_model_share_one_load(project) -> None:
    root, variants, out = project
    executor = InProcessExecutor(BACKEND)
    _build(variants, out, executor=executor)
    assert sorted(line.split()[1] for line in _loads(root)) == ["models/a.bin", "models/b.bin"]


@pytest.mark.parametrize("jobs", [1, 2], ids=["j1", "j2"])
def test_worker_processes_share_model_per_group(project, monkeypatch, jobs) -> None:
    root, variants, out = project
    monkeypatch.setattr(os, "environ", worker_env())
    stream = io.StringIO()
    report = build(variants, BuildOptions(out_dir=out, backend=BACKEND, jobs=jobs), out=stream)
    assert report.ok, stream.getvalue()
    loads = _loads(root)
    assert sorted(line.split()[1] for line in loads) == ["models/a.bin", "models/b.bin"]
    pids = {line.split()[0] for line in loads}
    assert str(os.getpid()) not in pids  # conversions ran in workers
    assert len(pids) == jobs


def test_manifest_is_stable_across_build_orders(tmp_path: Path) -> None:
    variants = make_project(tmp_path / "p", {"a": [256, 512], "b": [256]})
    _build(variants, tmp_path / "o1")
    _build(list(reversed(variants)), tmp_path / "o2")
    assert (
        manifest_path(tmp_path / "o1").read_bytes() == manifest_path(tmp_path / "o2").read_bytes()
    )


def test_clean_removes_artifacts_and_stamps(project) -> None:
    _root, variants, out = project
    _build(variants, out)
    removed = clean(variants[:1], out)
    assert removed == [str(variants[0].output)]
    assert not (out / str(variants[0].output)).exists()
    assert len(iter_stamps(out)) == 3
    report, _ = _build(variants, out)
    assert report.summary.built == [variants[0].name]


def test_clean_orphans_keeps_current_variants(project) -> None:
    _root, variants, out = project
    _build(variants, out)
    removed = clean(variants[1:], out, orphans=True)
    assert removed == [str(variants[0].output)]
    assert len(json.loads(manifest_path(out).read_text())["artifacts"]) == 3


def test_duplicate_variant_names_are_rejected(project) -> None:
    _root, variants, out = project
    with pytest.raises(ValueError, match="duplicate variant names"):
        _build([variants[0], variants[0]], out)


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_task_order_keeps_each_lane_on_one_model_at_a_time(tmp_path: Path, lanes) -> None:
    """-j N deals model groups to N lanes: a worker finishes a model before the next one."""
    from czbuild.builder.tasks import order_variants

    variants = make_project(tmp_path / "p", {m: [256, 512, 768] for m in "abcde"})
    ordered = [v.name for v in order_variants(variants, lanes=lanes)]
    assert sorted(ordered) == sorted(v.name for v in variants)
    if lanes == 1:
        assert ordered == [v.name for v in variants]
    lane_of = {m: i % lanes for i, m in enumerate("abcde")}
    for lane in range(lanes):
        models = [n[0] for n in ordered if lane_of[n[0]] == lane]
        # each model's variants are consecutive within its lane (one load per model)
        assert models == sorted(models), (lane, models)
    # the first N tasks start N different models
    assert len({n[0] for n in ordered[:lanes]}) == lanes


def test_parallel_build_loads_each_model_about_once(tmp_path: Path, monkeypatch) -> None:
    """-j 2 over 8 models x 4 tiles: each worker keeps one model at a time.

    Before the lane order and the pool's turn-taking, every one of the 32 jobs loaded its
    model again (the workers alternated between models). Thread timing may still cost an
    occasional extra load, hence the bound rather than exactly 8.
    """
    root = tmp_path / "p"
    variants = make_project(root, {m: [256, 512, 768, 1024] for m in "abcdefgh"})
    monkeypatch.setattr(os, "environ", worker_env())
    stream = io.StringIO()
    report = build(
        variants, BuildOptions(out_dir=tmp_path / "o", backend=BACKEND, jobs=2), out=stream
    )
    assert report.ok, stream.getvalue()
    loads = [line.split()[1] for line in _loads(root)]
    assert sorted(set(loads)) == [f"models/{m}.bin" for m in "abcdefgh"]
    assert len(loads) < 12, loads
