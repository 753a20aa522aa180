"""Run a model payload the way ZEN does: float32 NHWC tiles in, float32 maps out.

The one payload runner of czbuild (the verifier and the release's numeric comparison use it).

A runner is a callable ``runner(x) -> y`` on batches; models whose batch dim is fixed to 1 are
fed one tile at a time, others at most about a megapixel per call (:data:`PIXELS_PER_CALL`),
so a batch of large tiles does not multiply the peak memory of the run. ONNX payloads run in
onnxruntime on the CPU with the threads of the caller's CPU share (:func:`cpu_share`: the
``CZBUILD_THREADS`` a build gives each worker, else the cores this process may use); after
each call onnxruntime hands its arena back (arena shrinkage), so a run's activations do not
stay allocated beside the next model's. Zipped SavedModel payloads are extracted with the one
safe extractor into a private temporary folder and run through their ``serving_default``
signature in TensorFlow. onnxruntime and TensorFlow are imported inside functions only, so
importing this module stays cheap.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from czbuild.errors import ModelError
from czbuild.formats.container import SAVEDMODEL_LIMITS, Container, Limits, open_container
from czbuild.formats.extraction import extract

#: Largest batch per model call, in pixels (at least one tile per call).
PIXELS_PER_CALL = 1 << 20
#: Environment variable a build sets in each worker: the worker's share of the CPU cores.
THREADS_ENV = "CZBUILD_THREADS"


def cpu_share() -> int:
    """Threads a payload run may use: ``$CZBUILD_THREADS`` if set, else the usable cores.

    Results stay within float32 rounding whatever the count (onnxruntime splits the same
    kernels over threads); artifact bytes never depend on it.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


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

    def __init__(
        self,
        model_bytes: bytes,
        input_dims: list[int | None] | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        """Open a session; ``input_dims`` default to the model's (None where symbolic).

        Args:
            model_bytes: The ONNX model.
            input_dims: Override the model's input dims.
            threads: Intra-op threads; default :func:`cpu_share`.

        Raises:
            ModelError: onnxruntime cannot load the model.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_share()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.threads = options.intra_op_num_threads
        self._run_options = ort.RunOptions()
        # A failed run raises (with onnxruntime's message); its duplicate ERROR log line on
        # stderr only adds noise (e.g. czbuild init probing sizes a model cannot take).
        self._run_options.log_severity_level = 4
        # Give the arena back after each call: a megapixel U-Net run otherwise keeps ~1 GB
        # allocated (and fragmented) while the reference model runs next to it.
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        try:
            self._session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(
                f"onnxruntime cannot load the model: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        first = self._session.get_inputs()[0]
        if input_dims is None:
            input_dims = [d if isinstance(d, int) else None for d in first.shape]
        super().__init__(input_dims)
        self._input = first.name
        self._output = self._session.get_outputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        (y,) = self._session.run([self._output], {self._input: x}, self._run_options)
        return np.asarray(y, dtype=np.float32)


class SavedModelRunner(Runner):
    """A zipped SavedModel's ``serving_default`` signature; owns its temporary folder.

    Attributes:
        signature: The concrete serving function.
        signatures: Names of every signature of the SavedModel.
        input_name / output_name: The single input and output of the signature (None when it
            has several; such a runner cannot run).
        input_spec / output_spec: Their ``tf.TensorSpec`` (or None).
    """

    kind = "savedmodel"

    def __init__(self, nested: Container | bytes, *, limits: Limits = SAVEDMODEL_LIMITS) -> None:
        """Extract the SavedModel into a private temporary folder and load it.

        Raises:
            ArchiveError: The nested zip is unsafe or unreadable.
            ModelError: TensorFlow cannot load it, or it has no ``serving_default``.
        """
        import tensorflow as tf

        if not isinstance(nested, Container):
            nested = open_container(nested, limits=limits, label="SavedModel payload")
        self._tmp: tempfile.TemporaryDirectory | None = tempfile.TemporaryDirectory(
            prefix="czbuild-savedmodel-"
        )
        try:
            root = Path(self._tmp.name)
            extract(nested, root)
            try:
                self._loaded = tf.saved_model.load(str(root))
            except Exception as exc:
                raise ModelError(
                    f"tf.saved_model.load failed: {type(exc).__name__}: {str(exc)[:300]}"
                ) from exc
            self.signatures = sorted(getattr(self._loaded, "signatures", {}))
            if "serving_default" not in self.signatures:
                raise ModelError(
                    f"the SavedModel has no serving_default signature ({self.signatures})"
                )
        except BaseException:
            self.close()
            raise
        self.signature = self._loaded.signatures["serving_default"]
        _, kwargs = self.signature.structured_input_signature
        outputs = self.signature.structured_outputs
        single = len(kwargs) == 1 and isinstance(outputs, dict) and len(outputs) == 1
        self.input_name: str | None = None
        self.input_spec: Any = None
        self.output_name: str | None = None
        self.output_spec: Any = None
        if single:
            self.input_name, self.input_spec = next(iter(kwargs.items()))
            self.output_name, self.output_spec = next(iter(outputs.items()))
        dims = _dims(self.input_spec) if self.input_spec is not None else []
        super().__init__(dims)

    def _run(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self.input_name is None or self.output_name is None:
            raise ModelError("the SavedModel's serving_default has no single input and output")
        out = self.signature(**{self.input_name: tf.constant(x)})
        return np.asarray(out[self.output_name].numpy(), dtype=np.float32)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _dims(spec: Any) -> list[int | None]:
    return list(spec.shape.as_list()) if spec.shape.rank is not None else []


def open_runner(model_bytes: bytes, *, threads: int | None = None) -> Runner:
    """A runner for a payload of either kind (a nested ZIP is a SavedModel, else ONNX).

    Raises:
        ArchiveError: An unsafe SavedModel zip.
        ModelError: The payload does not load.
    """
    from czbuild.formats.reader import payload_kind

    if payload_kind(model_bytes) == "savedmodel_zip":
        return SavedModelRunner(model_bytes)
    return OnnxRunner(model_bytes, threads=threads)
