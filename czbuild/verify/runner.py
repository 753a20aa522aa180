"""Run a packaged model the way ZEN does: float32 NHWC tiles in, float32 maps out.

A runner is a callable ``runner(x) -> y`` on batches; models whose batch dim is fixed to 1 are
fed one tile at a time, others at most about a megapixel per call (:data:`PIXELS_PER_CALL`),
so a batch of large tiles does not multiply the peak memory of the run. ONNX payloads run in
onnxruntime (imported lazily, single-threaded on the CPU), zipped SavedModel payloads through
their serving signature in TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

#: Largest batch per model call, in pixels (at least one tile per call).
PIXELS_PER_CALL = 1 << 20


class Runner:
    """Base class: batch handling and cleanup.

    Attributes:
        input_dims: Input dims with batch, ``None`` where symbolic.
        kind: ``"onnx"`` or ``"savedmodel"``.
    """

    kind = "model"

    def __init__(self, input_dims: list[int | None]) -> None:
        self.input_dims = list(input_dims)

    @property
    def fixed_batch(self) -> bool:
        """Whether the model takes exactly one tile per call."""
        return self.input_dims[0] == 1

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` (without batch) fits the model's declared dims."""
        dims = self.input_dims[1:]
        return len(shape) == len(dims) and all(d is None or d == s for d, s in zip(dims, shape))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run on a float32 batch ``x`` and return the float32 output batch."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        pixels = int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1
        step = 1 if self.fixed_batch else max(1, PIXELS_PER_CALL // max(pixels, 1))
        if x.shape[0] <= step:
            return self._run(x)
        return np.concatenate(
            [self._run(x[i : i + step]) for i in range(0, x.shape[0], step)], axis=0
        )

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (temporary folders)."""


class OnnxRunner(Runner):
    """An ONNX model in an onnxruntime CPU session."""

    kind = "onnx"

    def __init__(self, model_bytes: bytes, input_dims: list[int | None]) -> None:
        import onnxruntime as ort

        super().__init__(input_dims)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        (y,) = self._session.run([self._output], {self._input: x})
        return np.asarray(y, dtype=np.float32)


class SavedModelRunner(Runner):
    """A SavedModel's serving signature; owns the temporary folder it was unpacked to."""

    kind = "savedmodel"

    def __init__(
        self,
        function: Callable[..., Any],
        input_name: str,
        output_name: str,
        input_dims: list[int | None],
        tmp: tempfile.TemporaryDirectory | None,
        keepalive: Any = None,
    ) -> None:
        super().__init__(input_dims)
        self._function = function
        self._input = input_name
        self._output = output_name
        self._tmp = tmp
        self._keepalive = keepalive

    def _run(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self._function(**{self._input: tf.constant(x)})
        return np.asarray(out[self._output].numpy(), dtype=np.float32)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
