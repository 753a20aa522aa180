"""Verification at the cost floor: runs shared between checks, bounded tiling, clear findings.

Fast tests use NumPy stand-ins; the end-to-end ones (marked slow) convert tiny seeded Keras
models and count how often the packaged model runs during a whole verification.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from czbuild.verify.info import ModelInfo
from czbuild.verify.inputs import SEEDED_PIXELS, seeded_batch
from czbuild.verify.memory import check_memory, needed_bytes
from czbuild.verify.report import FAILED, VerifyReport
from czbuild.verify.runs import RunMemo
from czbuild.verify.settings import BUILD, VerifySettings
from czbuild.verify.tiles import MAX_TILES, TooManyTiles, run_tiled

INFO = ModelInfo(
    family="czann",
    version="2.1.0",
    type="SingleClassSemanticSegmentation",
    input_shape=(32, 32, 1),
    output_shape=(32, 32, 2),
    classes=("bg", "fg"),
    overlap=(4, 4),
)


def _info(tile: int) -> ModelInfo:
    return INFO.with_shapes((tile, tile, 1), (tile, tile, 2))


def test_memo_runs_each_distinct_input_once() -> None:
    calls: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        return x * 2

    memo = RunMemo(predict)
    a = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    assert np.array_equal(memo(a), a * 2)
    assert np.array_equal(memo(a.copy()), a * 2)  # same values, another array: remembered
    memo(a + 1)
    assert calls == [1, 1] and (memo.runs, memo.hits) == (2, 1)
    with pytest.raises(ValueError):
        memo(a)[0, 0, 0, 0] = 5  # remembered outputs cannot be changed by a caller


def test_memo_drops_the_oldest_outputs_beyond_its_budget() -> None:
    memo = RunMemo(lambda x: x.astype(np.float64), max_bytes=3 * 8 * 16)
    inputs = [np.full((1, 4, 4, 1), i, np.float32) for i in range(4)]
    for x in inputs:
        memo(x)
    memo(inputs[0])  # dropped: runs again
    memo(inputs[3])  # kept
    assert (memo.runs, memo.hits) == (5, 1)


@pytest.mark.parametrize(
    ("tile", "count"),
    [(32, 6), (256, 6), (512, 4), (1024, 1)],
    ids=["32", "256", "512", "1024"],
)
def test_seeded_batch_holds_a_megapixel_and_keeps_its_order(tile: int, count: int) -> None:
    x = seeded_batch(_info(tile), (tile, tile, 1), seed=0)
    assert x.shape[0] == count
    assert x.shape[0] == 1 or x.shape[0] * tile * tile <= SEEDED_PIXELS
    full = seeded_batch(_info(32), (32, 32, 1), seed=0)
    if count >= 3:  # random, darkest, brightest first
        assert np.all(x[1] == 0.0) and np.all(x[2] == 1.0)
        assert np.all(full[1] == 0.0) and np.all(full[2] == 1.0)
    assert float(x[0].std()) > 0.0


def test_a_tile_the_machine_cannot_verify_is_refused_naming_the_memory(monkeypatch) -> None:
    import czbuild.verify.memory as memory

    huge = _info(100_000)
    needed = needed_bytes(huge, BUILD)
    assert needed > 100 * 2**30  # 10^10 pixels: hundreds of GiB even as a lower bound
    monkeypatch.setattr(memory, "available_bytes", lambda: 16 * 2**30)
    report = VerifyReport(path=Path("x.czann"))
    assert not check_memory(huge, report, BUILD)
    (check,) = report.checks
    assert check.name == "semantics" and check.status == FAILED
    assert "100000x100000 tile needs at least" in check.message and "GiB" in check.figure
    assert "16 GiB are available" in check.message and "--no-verify" in check.message
    # an ordinary tile fits
    assert check_memory(_info(1024), VerifyReport(path=Path("y.czann")), BUILD)


def test_onnxruntime_runs_without_an_arena_and_memory_is_handed_back() -> None:
    """No pool that outlives a run; release() trims (and collects) without failing."""
    from onnx import TensorProto, helper

    from czbuild.formats.runner import OnnxRunner
    from czbuild.verify.memory import release

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 8, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    runner = OnnxRunner(model.SerializeToString())
    assert runner._session.get_session_options().enable_cpu_mem_arena is False
    x = np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 8, 8, 1)
    np.testing.assert_array_equal(runner(x), np.maximum(x, 0))
    release()
    release(collect=True)


def test_the_proxy_tile_bounds_the_tiling_memory() -> None:
    own = needed_bytes(_info(4096), VerifySettings(tiling_max_tile=0))
    proxy = needed_bytes(_info(4096), BUILD)
    assert proxy * 4 < own


def test_tiled_runs_stream_and_refuse_layouts_beyond_the_cap() -> None:
    seen: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape[0])
        return x

    image = np.random.default_rng(0).uniform(size=(1, 768, 768, 1)).astype(np.float32)
    run = run_tiled(predict, image, (256, 256), (64, 64))
    assert np.array_equal(run.output, image[0])
    assert max(seen) <= 16  # a megapixel per call, never every crop at once
    # the DeepLabV3 case: overlap 254 of 256 would cut 66049 tiles (48 GiB of crops)
    with pytest.raises(TooManyTiles, match="66049 tiles"):
        run_tiled(predict, image, (256, 256), (254, 254))
    assert MAX_TILES < 66049


def _keras():
    """Keras, imported by the slow tests that use it (not at collection: TensorFlow is ~3 s)."""
    return pytest.importorskip("keras")


def _global_context_model(seed: int = 0):
    """Conv + a global-average-pooling branch added back everywhere (ASPP's image pooling)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(pooled)])
    return keras.Model(inp, keras.layers.Conv2D(2, 1, activation="softmax")(x))


def _local_model(seed: int = 0):
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    return keras.Model(inp, keras.layers.Conv2D(2, 1, activation="softmax")(x))


def _build(out: Path, name: str, model, *, tile: int, overlap: int) -> Path:
    from czbuild.convert import ConversionRequest, convert
    from czbuild.formats.czann import CzannMetadata

    metadata = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=("bg", "fg"),
        min_overlap=(overlap, overlap),
        model_name=name,
    )
    request = ConversionRequest(source=model, metadata=metadata, spatial_dims=(tile, tile))
    return Path(convert(request, out / f"{name}.czann").path)


@pytest.mark.slow
def test_the_packaged_model_runs_once_per_distinct_input(tmp_path: Path, monkeypatch) -> None:
    """semantics and fidelity share one batch; tiling reuses what it already ran."""
    from czbuild.formats import runner as runner_mod
    from czbuild.verify import verify_artifact

    model = _local_model()
    path = _build(tmp_path, "local", model, tile=32, overlap=4)
    inputs: list[tuple] = []
    original = runner_mod.OnnxRunner._run

    def counting(self, x):
        inputs.append((x.shape, x.tobytes()))
        return original(self, x)

    monkeypatch.setattr(runner_mod.OnnxRunner, "_run", counting)
    from czbuild.verify import api

    releases: list[int] = []
    monkeypatch.setattr(api, "release", lambda: releases.append(len(inputs)))
    report = verify_artifact(path, source_model=model, overlap_analysis="never")
    assert report.ok, [(c.name, c.message) for c in report.failed]
    assert len(inputs) == len(set(inputs))  # never the same input twice
    # freed memory goes back before the packaged model's first run, after it (before the
    # source model runs) and before the tiled simulation
    assert releases == [0, 1, 1]
    # the seeded batch (6 tiles) once, the 3 x 3 tiles of the 88-px image (32 + 2 x 28) once
    assert [shape[0] for shape, _ in inputs] == [6, 9]


@pytest.mark.slow
def test_a_global_context_model_gets_one_clear_finding(tmp_path: Path) -> None:
    from czbuild.builder.verification import failure_summary
    from czbuild.verify import verify_artifact

    model = _global_context_model()
    path = _build(tmp_path, "global", model, tile=32, overlap=8)
    report = verify_artifact(path, source_model=model, seam_tolerance=1e-6)
    seams = report.get("tiling.seams")
    assert seams is not None and seams.status == FAILED
    assert [c.name for c in report.checks].count("tiling.seams") == 1
    assert "tiles will show seams whatever the overlap" in seams.message
    assert "verify.accept: [tiling.seams]" in seams.message
    assert seams.details["receptive_field_bounded"] is False
    assert seams.details["tile_needed"] >= 64
    assert report.get("tiling.min_overlap").figure == "none"
    line = failure_summary(report.to_dict())
    assert "receptive field >= " in line and "raise the tile to >= " in line
    # accepted by name: a warning, the report passes
    accepted = verify_artifact(
        path, source_model=model, seam_tolerance=1e-6, accept=["tiling.seams"]
    )
    assert accepted.ok and accepted.get("tiling.seams").status == "warning"


@pytest.mark.slow
def test_seam_and_fidelity_tolerances_are_separate(tmp_path: Path) -> None:
    from czbuild.verify import verify_artifact

    model = _global_context_model()
    path = _build(tmp_path, "loose", model, tile=32, overlap=8)
    report = verify_artifact(path, source_model=model, fidelity_tolerance=1e-5, seam_tolerance=1.0)
    assert report.get("tiling.seams").status == "passed"
    assert report.get("tiling.seams").details["tolerance"] == 1.0
    assert report.get("fidelity").details["tolerance"] == 1e-5


@pytest.mark.slow
def test_variants_of_one_loaded_model_share_the_reference_runs() -> None:
    """The build worker's variants (same model object, same chains) run a common input once."""
    from types import SimpleNamespace

    import numpy as np

    from czbuild.verify.source import from_variant

    model = _local_model()
    pre = ({"op": "normalization", "mean": [0.5], "std": [0.25]},)

    def variant(tile: int, preprocessing=pre):
        spec = SimpleNamespace(
            spatial_dims=(tile, tile), preprocessing=preprocessing, postprocessing=()
        )
        return SimpleNamespace(spec=spec)

    first = from_variant(variant(64), source=model)
    x = np.random.default_rng(0).random((1, 48, 48, 1), dtype=np.float32)
    expected = first.predict(x)
    second = from_variant(variant(128), source=model)
    assert second is first
    assert np.array_equal(second.predict(x), expected) and second.runs.runs == 1
    assert second.runs.hits == 1
    # another chain, or another model, is another reference
    assert from_variant(variant(64, preprocessing=()), source=model) is not first
    assert from_variant(variant(64), source=_local_model(1)) is not first


@pytest.mark.slow
def test_onnx_checker_runs_once_per_artifact(tmp_path: Path, monkeypatch) -> None:
    """The converter's full check covers the verifier's on the same bytes; other bytes are checked."""
    import onnx

    from czbuild.onnx_graph import checks
    from czbuild.verify import verify_artifact

    calls: list[int] = []
    original = onnx.checker.check_model

    def counting(model, *args, **kwargs):
        calls.append(1)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(onnx.checker, "check_model", counting)
    model = _local_model()
    path = _build(tmp_path, "once", model, tile=32, overlap=4)
    converted = len(calls)
    assert converted >= 1  # the converter checked what it wrote
    report = verify_artifact(path, source_model=model, tiling=False)
    assert report.get("payload.model").status == "passed"
    assert len(calls) == converted  # the verifier did not check the same bytes again

    # bytes this process did not make (another machine's artifact): checked, and a broken
    # model still fails payload.model
    monkeypatch.setattr(checks, "_CHECKED", {})
    report = verify_artifact(path, source_model=model, tiling=False)
    assert report.get("payload.model").status == "passed"
    assert len(calls) == converted + 1


def test_passed_checker_remembers_only_checked_bytes() -> None:
    import onnx
    from onnx import TensorProto, helper

    from czbuild.onnx_graph.checks import passed_checker, serialize_checked

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    data = serialize_checked(proto, opset=18)
    assert passed_checker(data)
    assert not passed_checker(data + b"\x00")
    assert onnx.load_from_string(data).graph.node[0].op_type == "Relu"
