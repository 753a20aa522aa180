"""The no-op path's shortcuts (docs/building.md, "What a no-op build costs") keep every rebuild.

A build that holds the output folder's lock reuses what its checks read: the stamps (the
manifest check does not read them again), the stamp-file listing of the start-of-build walk
(no second walk), and the spec a stamp recorded when its digest is the variant's (no
``to_plain``). Each test here changes one thing after a no-op build has gone through those
shortcuts and checks that the change still rebuilds, and that the manifest stays exact.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from czbuild.builder import BuildOptions, BuildSession, build, fingerprint, locking, status
from czbuild.builder.manifest import manifest_path, render_manifest
from czbuild.builder.stamps import read_stamp, stamp_path, write_stamp
from support.build_fakes import BACKEND, make_project, respec


def _build(variants, out: Path):
    options = BuildOptions(out_dir=out, backend=BACKEND, in_process=True)
    report = build(variants, options, out=io.StringIO())
    assert report.ok, report.summary.failed
    return report


def _manifest_is_exact(out: Path) -> None:
    on_disk = json.loads(manifest_path(out).read_text())
    assert on_disk == render_manifest(out)  # read from disk, no shortcut
    for entry in on_disk["artifacts"]:
        assert entry["sha256"] == hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()


@pytest.fixture()
def built(tmp_path: Path):
    root = tmp_path / "proj"
    variants = make_project(root, {"a": [256, 512], "b": [256]})
    out = tmp_path / "out"
    _build(variants, out)
    report = _build(variants, out)  # the no-op, through the shortcuts
    assert report.summary.built == [] and len(report.summary.up_to_date) == 3
    return root, variants, out


@pytest.mark.parametrize(
    "change", ["recipe", "model-bytes", "code-digest", "deleted-artifact", "edited-artifact"]
)
def test_a_change_after_a_no_op_build_still_rebuilds(built, change, monkeypatch) -> None:
    root, variants, out = built
    expected = [variants[0].name]
    if change == "recipe":
        variants = [respec(variants[0], metadata={"classes": ("x", "y")}), *variants[1:]]
    elif change == "model-bytes":
        (root / "models/a.bin").write_bytes(b"retrained weights")
        expected = [v.name for v in variants if v.recipe == "a"]
    elif change == "code-digest":
        monkeypatch.setattr(fingerprint, "czbuild_code_digest", lambda file_hash: "c" * 64)
        expected = [v.name for v in variants]
    elif change == "deleted-artifact":
        (out / str(variants[0].output)).unlink()
    else:
        (out / str(variants[0].output)).write_bytes(b"edited by hand")
    report = _build(variants, out)
    assert sorted(report.summary.built) == sorted(expected)
    _manifest_is_exact(out)
    again = _build(variants, out)
    assert again.summary.built == []
    _manifest_is_exact(out)


def test_manifest_keeps_stamps_of_variants_outside_the_build(built) -> None:
    """The listing from the start-of-build walk includes stamps no variant of the run read."""
    _root, variants, out = built
    only_a = [v for v in variants if v.recipe == "a"]
    manifest_path(out).unlink()
    (out / str(only_a[0].output)).unlink()
    report = _build(only_a, out)
    assert report.summary.built == [only_a[0].name]
    paths = [a["path"] for a in json.loads(manifest_path(out).read_text())["artifacts"]]
    assert paths == sorted(str(v.output) for v in variants)
    _manifest_is_exact(out)


def test_a_hand_edited_manifest_is_rewritten_by_a_no_op_build(built) -> None:
    _root, variants, out = built
    data = json.loads(manifest_path(out).read_text())
    data["artifacts"][0]["sha256"] = "0" * 64
    manifest_path(out).write_text(json.dumps(data))
    _build(variants, out)
    _manifest_is_exact(out)


def test_a_recorded_spec_stands_in_only_when_its_own_digest_is_the_variants(built) -> None:
    """An edited ``spec`` in a stamp is not taken for the variant's: the check converts the
    variant's spec itself, so status and the build's own re-check agree."""
    _root, variants, out = built
    stamp = read_stamp(out, str(variants[0].output))
    assert stamp is not None
    assert fingerprint.spec_of_stamp(variants[0], stamp) == variants[0].spec.to_plain()
    del stamp["spec"]["metadata"]["license"]
    write_stamp(out, stamp)
    assert fingerprint.spec_of_stamp(variants[0], stamp) is None
    assert all(s.up_to_date for s in status(variants, out))  # the spec digest is unchanged
    stamp["spec_digest"] = "0" * 64
    write_stamp(out, stamp)
    (st,) = [s for s in status(variants, out) if not s.up_to_date]
    assert st.variant == variants[0].name and st.reasons[0].kind == "spec"
    report = _build(variants, out)
    assert report.summary.built == [variants[0].name]
    assert all(s.up_to_date for s in status(variants, out))


def test_stamps_read_under_one_tenure_of_the_lock_are_not_reused_after_it(built) -> None:
    _root, variants, out = built
    session = BuildSession(variants, BuildOptions(out_dir=out, backend=BACKEND))
    session.status(variants[0])
    assert session.stamp_snapshot() == ({}, None)  # read without the lock: not kept
    locking.hold(out)
    try:
        session.note_stamp_listing({str(v.output) for v in variants})
        session.status(variants[0])
        known, listing = session.stamp_snapshot()
        assert list(known) == [str(variants[0].output)]
        assert listing == {str(v.output) for v in variants}
    finally:
        locking.release(out)
    assert session.stamp_snapshot() == ({}, None)
    locking.hold(out)  # a new tenure: somebody may have written in between
    try:
        assert session.stamp_snapshot() == ({}, None)
    finally:
        locking.release(out)


def test_a_stamp_the_session_removes_leaves_the_listing(built) -> None:
    _root, variants, out = built
    session = BuildSession(variants, BuildOptions(out_dir=out, backend=BACKEND))
    locking.hold(out)
    try:
        session.note_stamp_listing({str(v.output) for v in variants})
        session.clean_variant(variants[1])
        assert not stamp_path(out, str(variants[1].output)).exists()
        _known, listing = session.stamp_snapshot()
        assert listing == {str(variants[0].output), str(variants[2].output)}
    finally:
        locking.release(out)
