"""Numeric equivalence of two network payloads: the fallback for non-byte-stable members.

Both payloads run on the same seeded random tensors (uniform in [0, 1), float32, the input
shape the payload declares, batch 1, undefined spatial dims :data:`DEFAULT_SPATIAL`); the
largest absolute difference of the outputs decides. Zipped SavedModels run through their
``serving_default`` signature in TensorFlow, ONNX models in onnxruntime; both are imported only
here, only when called.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ArchiveError
from czbuild.release.entries import payload_kind_of, read_zip
from czbuild.release.policy import NUMERIC_TOLERANCE

DEFAULT_SPATIAL = 64
DEFAULT_SAMPLES = 2


@dataclass(frozen=True)
class NumericResult:
    """Outcome of :func:`compare_payloads`.

    Attributes:
        ok: The largest difference is within ``tolerance``.
        max_abs_diff: Largest absolute output difference over all samples.
        tolerance: The tolerance used.
        samples: Number of seeded input tensors.
        input_shape: Shape of each input tensor (with batch).
        message: One sentence for reports.
    """

    ok: bool
    max_abs_diff: float
    tolerance: float
    samples: int
    input_shape: tuple[int, ...]
    message: str


def compare_payloads(
    expected: bytes,
    actual: bytes,
    *,
    tolerance: float = NUMERIC_TOLERANCE,
    seed: int = 0,
    samples: int = DEFAULT_SAMPLES,
) -> NumericResult:
    """Run both payloads on seeded tensors and compare their outputs.

    Raises:
        ArchiveError: A payload cannot be loaded, or the two take different input shapes.
    """
    kind = payload_kind_of(expected)
    if payload_kind_of(actual) != kind:
        raise ArchiveError("the payloads are of different kinds (ONNX vs SavedModel zip)")
    with tempfile.TemporaryDirectory(prefix="czbuild-numeric-") as tmp:
        loader = _savedmodel if kind == "savedmodel_zip" else _onnx
        run_e, shape_e = loader(expected, Path(tmp) / "expected")
        run_a, shape_a = loader(actual, Path(tmp) / "actual")
        if shape_e != shape_a:
            raise ArchiveError(f"the payloads take different inputs: {shape_e} vs {shape_a}")
        shape = tuple(1 if i == 0 else (d or DEFAULT_SPATIAL) for i, d in enumerate(shape_e))
        rng = np.random.default_rng(seed)
        worst = 0.0
        for _ in range(samples):
            x = rng.random(shape, dtype=np.float32)
            ye, ya = run_e(x), run_a(x)
            if ye.shape != ya.shape:
                raise ArchiveError(
                    f"the payloads give different output shapes: {ye.shape} vs {ya.shape}"
                )
            worst = max(worst, float(np.max(np.abs(ye.astype(np.float64) - ya.astype(np.float64)))))
    ok = worst <= tolerance
    verdict = "functionally identical" if ok else "NOT functionally identical"
    message = (
        f"{verdict} within tol {tolerance:g}: max abs diff {worst:.3g} on {samples} "
        f"seeded tensors of shape {list(shape)}"
    )
    return NumericResult(
        ok=ok,
        max_abs_diff=worst,
        tolerance=tolerance,
        samples=samples,
        input_shape=shape,
        message=message,
    )


Runner = Callable[[np.ndarray], np.ndarray]


def _savedmodel(data: bytes, root: Path) -> tuple[Runner, tuple[int | None, ...]]:
    import tensorflow as tf

    snapshot = read_zip(data)
    base = root.resolve()
    for name, content in snapshot.contents.items():
        if name.endswith("/"):
            continue
        target = (base / name).resolve()
        if base not in target.parents:
            raise ArchiveError(f"SavedModel member {name!r} points outside its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    try:
        loaded = tf.saved_model.load(str(base))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise ArchiveError(
            f"the SavedModel payload does not load: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    _, kwargs = signature.structured_input_signature
    ((name, spec),) = kwargs.items()
    (out_name,) = signature.structured_outputs

    def run(x: np.ndarray, _keep: Any = loaded) -> np.ndarray:
        return np.asarray(signature(**{name: tf.constant(x)})[out_name].numpy())

    return run, tuple(spec.shape.as_list())


def _onnx(data: bytes, root: Path) -> tuple[Runner, tuple[int | None, ...]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ArchiveError(f"the ONNX payload does not load: {str(exc)[:200]}") from exc
    inp = session.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else None for d in inp.shape)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {inp.name: x})[0])

    return run, shape
