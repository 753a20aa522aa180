"""Model runs, remembered: each distinct input runs through a model once per verification.

Several checks look at the same input: ``semantics`` and ``fidelity`` share one seeded batch
(:func:`czbuild.verify.inputs.seeded_batch`); ``semantics.output_range`` and
``semantics.class_order`` both run the synthetic test image; the tiling checks stitch the
same tiles again for the report picture and for the per-tile-statistics figure. A
:class:`RunMemo` wraps a predict function and returns the remembered output for an input it
has seen (compared by shape, dtype and a BLAKE2 digest of the bytes), so the model runs once
per distinct input. It keeps outputs, not activations, up to :data:`MEMO_BYTES` (oldest
dropped first), and counts the runs it made (tests and benchmarks read them).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

#: Outputs a memo keeps at most (bytes); beyond it the oldest are dropped.
MEMO_BYTES = 256 << 20

Predict = Callable[[np.ndarray], np.ndarray]


def input_key(x: np.ndarray) -> tuple[tuple[int, ...], str, bytes]:
    """Identity of an input array: shape, dtype and a digest of its bytes."""
    x = np.ascontiguousarray(x)
    return tuple(x.shape), x.dtype.str, hashlib.blake2b(x.data, digest_size=16).digest()


class RunMemo:
    """``predict`` with a memory: an input seen before is not run again.

    Attributes:
        runs: Calls that reached ``predict``.
        hits: Calls answered from memory.
        pixels: Spatial pixels (batch included) run through ``predict``.
    """

    def __init__(self, predict: Predict, *, max_bytes: int = MEMO_BYTES) -> None:
        self._predict = predict
        self._max_bytes = max_bytes
        self._outputs: OrderedDict[tuple[tuple[int, ...], str, bytes], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.runs = 0
        self.hits = 0
        self.pixels = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The output of ``predict(x)``, run only if ``x`` was not seen (read-only array)."""
        key = input_key(x)
        found = self._outputs.get(key)
        if found is not None:
            self._outputs.move_to_end(key)
            self.hits += 1
            return found
        y = np.asarray(self._predict(x))
        self.runs += 1
        self.pixels += int(np.prod(x.shape[:-1])) if x.ndim > 1 else int(x.size)
        if y.nbytes <= self._max_bytes:
            y.setflags(write=False)
            self._outputs[key] = y
            self._bytes += y.nbytes
            while self._bytes > self._max_bytes:
                _, dropped = self._outputs.popitem(last=False)
                self._bytes -= dropped.nbytes
        return y

    def clear(self) -> None:
        """Forget every remembered output."""
        self._outputs.clear()
        self._bytes = 0
