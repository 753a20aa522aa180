"""What a build depends on: recorded factory reads, content digests of models, the payload cache.

Fast tests use numpy-only HDF5 files and in-memory fakes; the ``slow`` ones build real
variants in this process (``in_process=True``) with TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from czbuild.builder import payload_cache
from czbuild.builder.fingerprint import compute_fingerprint, recorded_inputs
from czbuild.builder.hashing import HashCache
from czbuild.builder.reads import IMPORTED, READ, ReadRecorder
from czbuild.files.content import content_sha256
from czbuild.files.digest import file_sha256
from support.fresh_python import run_fresh_python

# --- content digests ------------------------------------------------------------------------


def _h5(path: Path, weights: np.ndarray, *, attrs: dict | None = None) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        group = handle.create_group("layers/conv")
        group.create_dataset("kernel", data=weights)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value


def _keras_zip(path: Path, weights: np.ndarray, *, date: str, entry_time: tuple) -> None:
    h5 = path.with_suffix(".tmp.h5")
    _h5(h5, weights)
    members = {
        "metadata.json": json.dumps({"keras_version": "3.15.1", "date_saved": date}),
        "config.json": json.dumps({"class_name": "Functional", "config": {"name": "m"}}),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(zipfile.ZipInfo(name, entry_time), text)
        archive.writestr(zipfile.ZipInfo("model.weights.h5", entry_time), h5.read_bytes())
    h5.unlink()


def test_keras_content_digest_ignores_save_date_and_entry_times(tmp_path: Path) -> None:
    w = np.arange(12, dtype="float32").reshape(3, 4)
    a, b, c = tmp_path / "a.keras", tmp_path / "b.keras", tmp_path / "c.keras"
    _keras_zip(a, w, date="2024-01-01@10:00:00", entry_time=(2024, 1, 1, 10, 0, 0))
    _keras_zip(b, w, date="2025-06-01@11:30:00", entry_time=(2025, 6, 1, 11, 30, 0))
    changed = w.copy()
    changed[1, 2] += 1e-6
    _keras_zip(c, changed, date="2024-01-01@10:00:00", entry_time=(2024, 1, 1, 10, 0, 0))
    assert file_sha256(a) != file_sha256(b)
    assert content_sha256(a) == content_sha256(b)
    assert content_sha256(a) != content_sha256(c)  # one weight changed


def test_keras_content_digest_renumbers_shared_object_ids() -> None:
    from czbuild.files.content import _member_digest

    def config(a: int, b: int, c: int) -> bytes:
        layers = [{"dtype": {"shared_object_id": x}} for x in (a, b, c)]
        return json.dumps({"config": {"layers": layers}}).encode()

    same = _member_digest("config.json", config(140001, 140001, 7))
    assert _member_digest("config.json", config(99, 99, 5)) == same  # other addresses
    assert _member_digest("config.json", config(99, 5, 5)) != same  # other sharing
    lone = json.dumps({"layers": [{"dtype": {"shared_object_id": 5}}, {"dtype": {}}]})
    assert _member_digest("config.json", lone.encode()) == _member_digest(
        "config.json", json.dumps({"layers": [{"dtype": {}}, {"dtype": {}}]}).encode()
    )  # an id used once links nothing


def test_h5_content_digest_covers_values_and_attributes_not_layout(tmp_path: Path) -> None:
    import h5py

    w = np.linspace(0, 1, 64, dtype="float32").reshape(8, 8)
    plain, chunked = tmp_path / "plain.h5", tmp_path / "chunked.h5"
    _h5(plain, w, attrs={"keras_version": "3.15.1"})
    with h5py.File(chunked, "w") as handle:  # same content, other layout
        handle.attrs["keras_version"] = "3.15.1"
        handle.create_group("layers/conv").create_dataset("kernel", data=w, chunks=(4, 4))
    assert file_sha256(plain) != file_sha256(chunked)
    assert content_sha256(plain) == content_sha256(chunked)
    other_attr = tmp_path / "attr.h5"
    _h5(other_attr, w, attrs={"keras_version": "3.16.0"})
    assert content_sha256(other_attr) != content_sha256(plain)


def test_savedmodel_content_digest_ignores_the_fingerprint_file(tmp_path: Path) -> None:
    model = tmp_path / "sm"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    (model / "fingerprint.pb").write_bytes(b"one")
    first = content_sha256(model)
    (model / "fingerprint.pb").write_bytes(b"two")
    assert content_sha256(model) == first
    (model / "variables" / "variables.index").write_bytes(b"index2")
    assert content_sha256(model) != first


def test_hash_cache_remembers_content_digests_by_stat(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    _h5(path, np.ones((2, 2), "float32"))
    cache = HashCache(tmp_path / "cache.json")
    digest = cache.content_sha256(path)
    cache._content[str(path)][2] = True  # trusted (outside the racy window)
    reads = cache.reads
    assert cache.content_sha256(path) == digest and cache.reads == reads
    cache.save()
    again = HashCache(tmp_path / "cache.json")
    assert again.content_sha256(path) == digest and again.reads == 0


# --- recorded reads ----------------------------------------------------------------------------


def test_read_recorder_keeps_project_files_and_local_modules_only(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    (project / "weights.bin").write_bytes(b"w")
    (project / "models" / "w2_helper_mod.py").write_text("VALUE = 1\n")
    out = project / "build"
    out.mkdir()
    (out / "old.czann").write_bytes(b"x")
    sys.path.insert(0, str(project / "models"))
    try:
        with ReadRecorder(exclude=[out], project_dir=project) as recorder:
            (project / "weights.bin").read_bytes()
            (out / "old.czann").read_bytes()  # the build's own output: left out
            (project / "new.txt").write_text("written, not read")  # a write: left out
            import json as _json  # noqa: F401 - the standard library: left out

            __import__("w2_helper_mod")
    finally:
        sys.path.remove(str(project / "models"))
        sys.modules.pop("w2_helper_mod", None)
    assert recorder.inputs == (
        (IMPORTED, str(project / "models" / "w2_helper_mod.py")),
        (READ, str(project / "weights.bin")),
    )


def test_czbuild_itself_is_never_a_recorded_input_even_inside_the_project() -> None:
    """czbuild's repository builds its own bundled recipes: its package lies in the project."""
    import czbuild

    package = Path(czbuild.__file__).resolve().parent
    repo = package.parent
    sys.modules.pop("czbuild.files.scratch", None)
    with ReadRecorder(project_dir=repo) as recorder:
        (package / "ops.py").read_bytes()
        __import__("czbuild.files.scratch")
    assert recorder.inputs == ()


def test_recorded_inputs_are_fingerprinted_and_a_missing_one_is_a_change(tmp_path) -> None:
    from czbuild.builder.status import compare
    from support.build_fakes import make_variant

    variant = make_variant(tmp_path, "r")
    weights = variant.project_dir / "weights.bin"
    weights.write_bytes(b"one")
    cache = HashCache(None)
    fp = compute_fingerprint(variant, cache, [(READ, "weights.bin")])
    [record] = [i for i in fp.inputs if i.recorded]
    assert record.path == "weights.bin" and record.sha256 == file_sha256(weights)
    stamp = {"output": fp.output, "artifact": {}, **fp.to_json()}
    assert recorded_inputs(stamp) == [(READ, "weights.bin")]
    weights.write_bytes(b"two")
    fp2 = compute_fingerprint(variant, HashCache(None), recorded_inputs(stamp))
    reasons = [r.message for r in compare(fp2, stamp, tmp_path / "none.czann", cache)]
    assert f"input changed: weights.bin ({READ})" in reasons
    weights.unlink()
    fp3 = compute_fingerprint(variant, HashCache(None), recorded_inputs(stamp))
    assert all(not i.recorded for i in fp3.missing_inputs)  # recorded: a change, not an error
    reasons = [r.message for r in compare(fp3, stamp, tmp_path / "none.czann", cache)]
    assert f"input missing: weights.bin ({READ})" in reasons


def test_czbuild_code_change_is_a_status_reason(tmp_path, monkeypatch) -> None:
    from czbuild.builder import fingerprint
    from czbuild.builder.status import compare
    from support.build_fakes import make_variant

    variant = make_variant(tmp_path, "r")
    fp = compute_fingerprint(variant, HashCache(None))
    assert len(fp.czbuild_code) == 64
    stamp = {"output": fp.output, "artifact": {}, **fp.to_json()}
    monkeypatch.setattr(fingerprint, "czbuild_code_digest", lambda file_hash: "f" * 64)
    changed = compute_fingerprint(variant, HashCache(None))
    kinds = {r.kind: r.message for r in compare(changed, stamp, tmp_path / "x", HashCache(None))}
    assert kinds["czbuild-code"].startswith("czbuild changed")


def test_artifact_code_leaves_out_cli_release_verify_and_recipe() -> None:
    from czbuild.builder.toolchain import artifact_code_files

    names = {rel for rel, _ in artifact_code_files()}
    assert {"convert.py", "ops.py", "formats/archive.py", "keras/converter.py"} <= names
    assert "builder/backend.py" in names and "builder/session.py" not in names
    assert not [n for n in names if n.startswith(("cli/", "release/", "verify/", "recipe/"))]


# --- the payload cache ---------------------------------------------------------------------------


class _Converted:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.input_shape = (32, 32, 1)
        self.output_shape = (32, 32, 2)
        self.route = "fixed"
        self.opset = 17


def _record(*checks: tuple[str, str]) -> dict:
    return {
        "ok": all(s != "failed" for _, s in checks),
        "path": "r/r.czann",
        "checks": [{"name": n, "status": s, "message": ""} for n, s in checks],
    }


def test_payload_cache_round_trip_and_a_damaged_entry_is_ignored(tmp_path: Path) -> None:
    from support.build_fakes import make_variant

    variant = make_variant(tmp_path, "r")
    key = payload_cache.payload_key(variant, [("model", "m.py", "1" * 64)], {"keras": "3"})
    verification = _record(("container.members", "passed"), ("fidelity", "passed"))
    payload_cache.write_entry(
        tmp_path,
        key,
        converted=_Converted(b"onnx-bytes"),
        inputs=[(READ, "/abs/w.keras")],
        verification=verification,
        variant=variant,
    )
    entry = payload_cache.read_entry(tmp_path, key)
    assert entry is not None and entry.payload == b"onnx-bytes"
    assert entry.inputs == ((READ, "/abs/w.keras"),) and entry.verification == verification
    assert payload_cache.can_reuse(entry, variant)
    (payload_cache.cache_dir(tmp_path) / key / payload_cache.PAYLOAD).write_bytes(b"onnx-bytez")
    assert payload_cache.read_entry(tmp_path, key) is None  # never shipped
    assert payload_cache.read_entry(tmp_path, "0" * 64) is None


def test_payload_key_follows_chain_tile_opset_inputs_and_toolchain(tmp_path: Path) -> None:
    from support.build_fakes import make_variant, respec

    variant = make_variant(tmp_path, "r")
    inputs = [("model", "m.py", "1" * 64), ("licence", "LICENSE", "2" * 64)]
    key = payload_cache.payload_key(variant, inputs, {"keras": "3"})
    same = [("model", "m.py", "1" * 64), ("licence", "LICENSE", "3" * 64)]  # licence: no
    assert payload_cache.payload_key(variant, same, {"keras": "3"}) == key
    renamed = respec(variant, metadata={"classes": ("a", "b")})
    assert payload_cache.payload_key(renamed, inputs, {"keras": "3"}) == key
    assert payload_cache.reuse_context(renamed) == payload_cache.reuse_context(variant)
    for other in (
        payload_cache.payload_key(variant, [("model", "m.py", "4" * 64)], {"keras": "3"}),
        payload_cache.payload_key(variant, inputs, {"keras": "4"}),
        payload_cache.payload_key(respec(variant, spatial_dims=(48, 48)), inputs, {"keras": "3"}),
        payload_cache.payload_key(respec(variant, opset=13), inputs, {"keras": "3"}),
    ):
        assert other != key


def test_reused_record_takes_payload_checks_from_the_cache_in_their_order() -> None:
    cached = payload_cache.CachedPayload(
        b"",
        (1,),
        (1,),
        "fixed",
        17,
        (),
        _record(
            ("container.members", "passed"), ("fidelity", "passed"), ("tiling.seams", "passed")
        ),
        "",
        None,
    )
    fresh = _record(
        ("container.members", "passed"),
        ("fidelity", "skipped"),
        ("tiling.seams", "skipped"),
        ("recipe.metadata", "failed"),
    )
    record = payload_cache.reused_record(fresh, cached)
    assert [(c["name"], c["status"]) for c in record["checks"]] == [
        ("container.members", "passed"),
        ("fidelity", "passed"),
        ("tiling.seams", "passed"),
        ("recipe.metadata", "failed"),
    ]
    assert record["ok"] is False


def test_only_the_same_class_count_reuses_the_payload_and_semantics_checks(tmp_path) -> None:
    """A rename reuses payload.* and semantics; another class count runs them again."""
    from support.build_fakes import make_variant, respec

    variant = respec(make_variant(tmp_path, "r"), metadata={"classes": ("bg", "fg")})
    record = _record(
        ("container.members", "passed"), ("payload.io", "passed"), ("semantics", "passed")
    )
    payload_cache.write_entry(
        tmp_path,
        "k",
        converted=_Converted(b"onnx-bytes"),
        inputs=[],
        verification=record,
        variant=variant,
    )
    entry = payload_cache.read_entry(tmp_path, "k")
    assert entry is not None
    renamed = respec(variant, metadata={"classes": ("bg", "cell")})
    assert payload_cache.metadata_only(entry, renamed)
    three = respec(variant, metadata={"classes": ("bg", "cell", "edge")})
    assert payload_cache.can_reuse(entry, three) and not payload_cache.metadata_only(entry, three)
    fresh = _record(
        ("container.members", "passed"), ("payload.io", "skipped"), ("semantics", "skipped")
    )
    fresh["summary"] = {"passed": 1, "failed": 0, "skipped": 2, "warning": 0}
    reused = payload_cache.reused_record(fresh, entry, payload=True)
    assert [c["status"] for c in reused["checks"]] == ["passed"] * 3
    assert reused["summary"] == {"passed": 3, "failed": 0, "skipped": 0, "warning": 0}
    assert reused["ok"]


def test_prune_keeps_the_most_recently_used_entries(tmp_path: Path) -> None:
    import os
    import time

    root = payload_cache.cache_dir(tmp_path)
    for i in range(5):
        folder = root / f"k{i}"
        folder.mkdir(parents=True)
        (folder / payload_cache.PAYLOAD).write_bytes(b"x" * 10)
        (folder / payload_cache.ENTRY).write_text("{}")
        os.utime(folder / payload_cache.ENTRY, (time.time() - 100 + i, time.time() - 100 + i))
    payload_cache.prune(tmp_path, max_entries=3)
    assert sorted(p.name for p in root.iterdir()) == ["k2", "k3", "k4"]
    payload_cache.prune(tmp_path, max_bytes=20)  # 12 bytes an entry
    assert sorted(p.name for p in root.iterdir()) == ["k4"]


# --- real builds (TensorFlow, in this process) -----------------------------------------------------

WEIGHTS_FACTORY = """\
from pathlib import Path

import keras

HERE = Path(__file__).parent


def build():
    return keras.models.load_model(HERE.parent / "weights" / "net.keras")
"""

RECIPE = """\
name: {name}
model:
  factory: ../models/net.py:build
format: czann
tile: 32
metadata:
  type: SingleClassSemanticSegmentation
  classes: [{classes}]
  min_overlap: [8, 8]
sweep:
  tile: [32, 48]
"""


RENAME_PROBE = """\
import sys

from czbuild.builder import pool
from czbuild.cli import main


def no_worker(*args, **kwargs):
    raise AssertionError("a worker was started")


pool.WorkerPool._spawn = no_worker
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ("tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx")
print("imported:", [name for name in heavy if name in sys.modules])
"""


def _save_net(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def _weights_project(root: Path, classes: str = "bg, fg") -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "models" / "net.py").write_text(WEIGHTS_FACTORY)
    (root / "recipes" / "seg.yaml").write_text(RECIPE.format(name="seg", classes=classes))
    _save_net(root / "weights" / "net.keras")
    return root


def _run(project: Path, out: Path, **options):
    from czbuild.builder import BuildOptions, build
    from czbuild.recipe import load_variants

    variants = load_variants(project_dir=project)
    report = build(variants, BuildOptions(out_dir=out, in_process=True, **options))
    assert report.ok, report.summary
    return report, variants


def _status(project: Path, out: Path) -> dict[str, list[str]]:
    from czbuild.builder import status
    from czbuild.recipe import load_variants

    return {
        s.variant: [r.message for r in s.reasons]
        for s in status(load_variants(project_dir=project), out)
    }


@pytest.mark.slow
def test_factory_weights_are_inputs_and_a_resave_rebuilds_nothing(tmp_path: Path) -> None:
    import time

    project = _weights_project(tmp_path / "proj")
    out = project / "build"
    report, _ = _run(project, out)
    assert len(report.summary.built) == 2
    stamp = json.loads((out / ".czbuild/stamps/seg/tile=32/seg.czann.json").read_text())
    recorded = [i for i in stamp["inputs"] if i.get("recorded")]
    assert [(i["role"], i["path"]) for i in recorded] == [(READ, "weights/net.keras")]
    assert recorded[0]["sha256"] == content_sha256(project / "weights" / "net.keras")

    time.sleep(1.1)  # a re-save of the same model: new bytes, same content
    before = file_sha256(project / "weights" / "net.keras")
    import keras

    weights = project / "weights" / "net.keras"
    keras.models.load_model(weights).save(weights)
    assert file_sha256(weights) != before
    assert _status(project, out) == {"seg@tile=32": [], "seg@tile=48": []}

    model = keras.models.load_model(weights)  # one weight changes
    values = model.get_weights()
    values[0][0, 0, 0, 0] += 0.5
    model.set_weights(values)
    model.save(weights)
    reasons = _status(project, out)
    assert reasons["seg@tile=32"] == [f"input changed: weights/net.keras ({READ})"]
    report, _ = _run(project, out)
    assert len(report.summary.built) == 2


@pytest.mark.slow
def test_class_rename_repackages_the_cached_payload_byte_identically(tmp_path, monkeypatch) -> None:
    from czbuild.keras import converter as converter_module

    project = _weights_project(tmp_path / "proj")
    out = project / "build"
    _run(project, out)
    first = json.loads((out / ".czbuild/stamps/seg/tile=32/seg.czann.json").read_text())

    recipe = project / "recipes" / "seg.yaml"
    recipe.write_text(recipe.read_text().replace("classes: [bg, fg]", "classes: [bg, cell]"))

    # `czbuild build` in a fresh process: no worker, no conversion, no heavy import
    probe = tmp_path / "probe.py"
    probe.write_text(RENAME_PROBE)
    printed = run_fresh_python(probe, "build", cwd=project).splitlines()
    assert "czbuild: 2 built, 0 up to date, 0 failed" in printed[-3], printed
    assert printed[-1] == "imported: []", printed
    stamp = json.loads((out / ".czbuild/stamps/seg/tile=32/seg.czann.json").read_text())
    checks = {c["name"]: c for c in stamp["verification"]["checks"]}
    old_checks = {c["name"]: c for c in first["verification"]["checks"]}
    assert stamp["verification"]["ok"]
    assert list(checks) == list(old_checks)  # the same checks, in the same order
    for name in old_checks:  # what reads the payload is reused, the rest ran again
        if name.startswith(("payload.", "semantics", "fidelity", "tiling.")):
            assert checks[name] == old_checks[name], name
    assert checks["recipe.metadata"]["status"] == "passed"  # ran again, on the new classes
    assert checks["container.metadata"]["status"] == "passed"
    statuses = [c["status"] for c in checks.values()]
    assert stamp["verification"]["summary"] == {
        s: statuses.count(s) for s in stamp["verification"]["summary"]
    }
    assert [i for i in stamp["inputs"] if i.get("recorded")]  # still known
    renamed = {t: file_sha256(out / f"seg/tile={t}/seg.czann") for t in (32, 48)}

    # the in-process path takes the same route (a conversion would fail here)
    def no_conversion(*args, **kwargs):
        raise AssertionError("the payload cache should have answered")

    monkeypatch.setattr(converter_module.ModelConverter, "__init__", no_conversion)
    recipe.write_text(recipe.read_text().replace("classes: [bg, cell]", "classes: [bg, cyte]"))
    _run(project, out)
    recipe.write_text(recipe.read_text().replace("classes: [bg, cyte]", "classes: [bg, cell]"))
    report, _ = _run(project, out)
    assert len(report.summary.built) == 2
    monkeypatch.undo()

    # the same recipe built from scratch gives the same bytes
    fresh = tmp_path / "fresh"
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns("build"))
    _run(fresh, fresh / "build")
    for tile in (32, 48):
        rel = f"seg/tile={tile}/seg.czann"
        assert file_sha256(out / rel) == file_sha256(fresh / "build" / rel) == renamed[tile]

    # a damaged cache entry is ignored (converted again), never shipped
    for payload in (out / ".czbuild" / "payloads").glob("*/payload.bin"):
        payload.write_bytes(payload.read_bytes()[:-1] + b"\0")
    recipe.write_text(recipe.read_text().replace("classes: [bg, cell]", "classes: [bg, nucleus]"))
    _run(project, out)
    recipe_fresh = fresh / "recipes" / "seg.yaml"
    recipe_fresh.write_text(recipe_fresh.read_text().replace("[bg, cell]", "[bg, nucleus]"))
    shutil.rmtree(fresh / "build")
    _run(fresh, fresh / "build")
    for tile in (32, 48):
        rel = f"seg/tile={tile}/seg.czann"
        assert file_sha256(out / rel) == file_sha256(fresh / "build" / rel)


def test_model_pin_accepts_the_content_or_the_byte_digest(tmp_path: Path) -> None:
    import dataclasses

    from czbuild.builder.session import _pin_mismatch
    from czbuild.errors import RecipeError
    from czbuild.recipe import check_source_pin
    from support.build_fakes import make_variant, respec

    variant = make_variant(tmp_path, "r", model="models/m.keras")
    model = tmp_path / "models" / "m.keras"
    model.parent.mkdir(parents=True, exist_ok=True)
    w = np.ones((2, 2), "float32")
    _keras_zip(model, w, date="2024-01-01@10:00:00", entry_time=(2024, 1, 1, 10, 0, 0))
    byte_pin, content_pin = file_sha256(model), content_sha256(model)
    for pin in (byte_pin, content_pin):
        pinned = respec(variant, model=dataclasses.replace(variant.spec.model, sha256=pin))
        check_source_pin(pinned)
        assert (
            _pin_mismatch(pinned, compute_fingerprint(pinned, HashCache(None)), HashCache(None))
            is None
        )
    # re-saved unchanged: the content pin still holds, the byte pin no longer does
    _keras_zip(model, w, date="2025-01-01@10:00:00", entry_time=(2025, 1, 1, 10, 0, 0))
    pinned = respec(variant, model=dataclasses.replace(variant.spec.model, sha256=content_pin))
    check_source_pin(pinned)
    stale = respec(variant, model=dataclasses.replace(variant.spec.model, sha256=byte_pin))
    message = _pin_mismatch(stale, compute_fingerprint(stale, HashCache(None)), HashCache(None))
    assert message is not None and "model.sha256" in message
    (tmp_path / "recipes").mkdir(exist_ok=True)
    stale.recipe_file.write_text("model:\n  path: ../models/m.keras\n")
    with pytest.raises(RecipeError, match="model.sha256"):
        check_source_pin(stale)
