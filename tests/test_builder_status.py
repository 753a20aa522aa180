"""Tests for czbuild.builder.status and fingerprint: why an artifact is (not) up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from czbuild.builder import toolchain
from czbuild.builder.fingerprint import compute_fingerprint, input_roles
from czbuild.builder.hashing import HashCache
from czbuild.builder.stamps import ArtifactRecord, make_stamp
from czbuild.builder.status import compare, spec_diff
from support.build_fakes import make_project, respec


@pytest.mark.parametrize(
    "old, new, expected",
    [
        pytest.param({"tile": 512}, {"tile": 1024}, [("tile", 512, 1024)], id="scalar"),
        pytest.param(
            {"m": {"classes": ["a", "b"]}},
            {"m": {"classes": ["a", "c"]}},
            [("m.classes[1]", "b", "c")],
            id="list-item",
        ),
        pytest.param(
            {"m": {"classes": ["a"]}},
            {"m": {"classes": ["a", "b"]}},
            [("m.classes", ["a"], ["a", "b"])],
            id="list-length",
        ),
        pytest.param({"a": 1}, {"a": 1, "b": 2}, [("b", "<unset>", 2)], id="added"),
        pytest.param({"a": 1}, {"a": 1}, [], id="equal"),
        pytest.param({"a": 1}, {"a": 1.0}, [("a", 1, 1.0)], id="int-vs-float"),
    ],
)
def test_spec_diff_names_dotted_keys(old, new, expected) -> None:
    got = [(k, str(a), b) for k, a, b in spec_diff(old, new)]
    assert got == [(k, str(a), b) for k, a, b in expected]


def test_input_roles_from_spec_keys(tmp_path: Path) -> None:
    spec = {
        "model": {"path": "m/x.keras", "custom_objects": ["layers.py"]},
        "metadata": {"license": "LICENSE"},
        "name": "x",
    }
    roles = input_roles(spec, tmp_path)
    assert roles[str(tmp_path / "m/x.keras")] == "model"
    assert roles[str(tmp_path / "layers.py")] == "custom objects"
    assert roles[str(tmp_path / "LICENSE")] == "licence"


def test_input_roles_of_wanted_paths_match_the_full_walk(tmp_path: Path) -> None:
    """The no-op path's targeted role lookup gives the full walk's first-key-wins roles."""
    spec = {
        "": {"x": "LICENSE"},
        "model": {"path": "m/x.keras", "inputs": ["w.bin", "./m/x.keras"]},
        "metadata": {"license": "LICENSE", "extra": [{"file": "w.bin"}]},
        "verify": {"samples": ["s.png", "w.bin"]},
        "z": ["other.txt", "f/unet.py:build"],
    }
    full = input_roles(spec, tmp_path)
    paths = [str(tmp_path / p) for p in ("m/x.keras", "w.bin", "LICENSE", "f/unet.py", "s.png")]
    wanted = input_roles(spec, tmp_path, paths)
    assert wanted == {p: full[p] for p in paths}
    assert wanted[str(tmp_path / "LICENSE")] == "x"  # key "" sorts first; its key "x"
    assert full[str(tmp_path / "w.bin")] == "metadata.extra[0].file"
    assert input_roles(spec, tmp_path, [str(tmp_path / "nowhere")]) == {}


def test_factory_string_maps_to_its_file(tmp_path: Path) -> None:
    roles = input_roles({"model": {"factory": "f/unet.py:build"}}, tmp_path)
    assert roles[str(tmp_path / "f/unet.py")] == "model"


@pytest.fixture()
def built(tmp_path: Path):
    """A fake variant, its artifact file and a stamp as a successful build writes it."""
    (variant,) = make_project(tmp_path / "p", {"a": [512]})
    cache = HashCache()
    out = tmp_path / "out"
    artifact = out / str(variant.output)
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"artifact bytes")
    fp = compute_fingerprint(variant, cache)
    record = ArtifactRecord(path=fp.output, sha256=cache.file_sha256(artifact), size=14)
    return variant, make_stamp(fp, record), artifact


def _reasons(variant, stamp, artifact) -> list[tuple[str, str]]:
    fp = compute_fingerprint(variant, HashCache())
    return [(r.kind, r.message) for r in compare(fp, stamp, artifact, HashCache())]


def test_fresh_build_is_up_to_date(built) -> None:
    assert _reasons(*built) == []


def _respec(variant, **changes):
    return respec(variant, **changes)


@pytest.mark.parametrize(
    "mutate, kind, text",
    [
        pytest.param(
            lambda v, a: (_respec(v, tile=1024), a),
            "spec",
            "spec value spatial_dims[0] changed: 512 -> 1024",
            id="spec-value",
        ),
        pytest.param(
            lambda v, a: (_respec(v, metadata={"classes": ("bg", "nuc")}), a),
            "spec",
            "spec value metadata.classes[1] changed",
            id="spec-nested",
        ),
        pytest.param(
            lambda v, a: ((v.project_dir / "models/a.bin").write_bytes(b"new"), v, a)[1:],
            "input",
            "model changed: models/a.bin",
            id="model-bytes",
        ),
        pytest.param(
            lambda v, a: ((v.project_dir / "LICENSE").write_text("GPL"), v, a)[1:],
            "input",
            "licence changed: LICENSE",
            id="licence",
        ),
        pytest.param(
            lambda v, a: (a.unlink(), v, a)[1:],
            "output-missing",
            "output missing",
            id="output-missing",
        ),
        pytest.param(
            lambda v, a: (a.write_bytes(b"tampered"), v, a)[1:],
            "output-modified",
            "output modified",
            id="output-modified",
        ),
        pytest.param(
            lambda v, a: ((v.project_dir / "models/a.bin").unlink(), v, a)[1:],
            "input-missing",
            "model missing: models/a.bin",
            id="model-missing",
        ),
    ],
)
def test_reasons_name_what_changed(built, mutate, kind, text) -> None:
    variant, stamp, artifact = built
    variant, artifact = mutate(variant, artifact)
    reasons = _reasons(variant, stamp, artifact)
    assert any(k == kind and text in m for k, m in reasons), reasons


def test_touch_without_change_is_up_to_date(built) -> None:
    variant, stamp, artifact = built
    import os

    os.utime(variant.project_dir / "models/a.bin")
    os.utime(artifact)
    assert _reasons(variant, stamp, artifact) == []


@pytest.mark.parametrize(
    "package, kind",
    [("czbuild", "czbuild-version"), ("tensorflow", "toolchain"), ("tf2onnx", "toolchain")],
)
def test_version_change_is_a_reason(built, monkeypatch, package, kind) -> None:
    variant, stamp, artifact = built
    stamp = {**stamp, "toolchain": {**stamp["toolchain"], package: "0.0.1"}}
    reasons = _reasons(variant, stamp, artifact)
    expected = f"{package} version changed: 0.0.1 -> {toolchain.toolchain_versions()[package]}"
    assert (kind, expected) in reasons


def test_no_stamp_means_never_built(built) -> None:
    variant, _stamp, artifact = built
    kinds = [k for k, _ in _reasons(variant, None, artifact)]
    assert kinds == ["never-built"]


def test_toolchain_versions_do_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from czbuild.builder.toolchain import toolchain_versions; "
        "v = toolchain_versions(); assert 'tensorflow' not in sys.modules; print(v)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "tf2onnx" in out.stdout


def test_a_torch_variant_records_the_torch_version(built, monkeypatch) -> None:
    """Upgrading PyTorch makes the PyTorch variants stale, and only them."""
    import dataclasses

    variant, _stamp, artifact = built
    torch_variant = respec(
        variant, model=dataclasses.replace(variant.spec.model, kind="torch", function="build")
    )
    versions = {"torch": "2.13.0+cpu"}
    monkeypatch.setattr(toolchain, "_dist_version", lambda name: versions.get(name, "1.0"))
    toolchain._toolchain.cache_clear()
    try:
        fp = compute_fingerprint(torch_variant, HashCache())
        assert fp.toolchain["torch"] == "2.13.0+cpu"
        assert "torch" not in compute_fingerprint(variant, HashCache()).toolchain
        record = ArtifactRecord(path=fp.output, sha256=HashCache().file_sha256(artifact), size=14)
        stamp = make_stamp(fp, record)
        assert _reasons(torch_variant, stamp, artifact) == []
        versions["torch"] = "2.14.0+cpu"
        toolchain._toolchain.cache_clear()
        assert _reasons(torch_variant, stamp, artifact) == [
            ("toolchain", "torch version changed: 2.13.0+cpu -> 2.14.0+cpu")
        ]
    finally:
        toolchain._toolchain.cache_clear()
