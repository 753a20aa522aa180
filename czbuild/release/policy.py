"""Which artifact members must be byte-identical, and which are compared numerically.

Every member of every artifact is byte-reproducible by default. The one exception the format
allows (czmodel-format.md 7.1, "two levels") is a payload that the pinned TensorFlow cannot
write byte-stably: then that member alone is compared by running both payloads on seeded
tensors (:mod:`czbuild.release.numeric`) and reported "functionally identical within tol".
The lock file records the decision per member (``"reproducible": "numeric"``).

:data:`NUMERIC_PAYLOADS` follows docs/reproducibility.md (the SavedModel part). At the time of
writing the normalised SavedModel export (``czbuild.keras.savedmodel_export``) is byte-stable
across processes with TensorFlow 2.21, so the set is empty and every member is compared byte
for byte; adding ``"savedmodel_zip"`` here switches legacy 3.0.0 payloads to the numeric
fallback everywhere (lock entries, ``check``, ``release``) without other changes.
"""

from __future__ import annotations

from czbuild.formats.layout import MODEL
from czbuild.release.lockfile import BYTES, NUMERIC

#: Payload kinds whose model member is compared numerically (see the module docstring).
NUMERIC_PAYLOADS: frozenset[str] = frozenset()

#: Absolute tolerance of the numeric comparison (the verifier's default).
NUMERIC_TOLERANCE = 1e-5


def member_policy(role: str, payload: str, numeric_payloads: frozenset[str] | None = None) -> str:
    """:data:`~czbuild.release.lockfile.NUMERIC` for the model member of a payload kind listed
    in ``numeric_payloads`` (default :data:`NUMERIC_PAYLOADS`), else ``BYTES``."""
    kinds = NUMERIC_PAYLOADS if numeric_payloads is None else numeric_payloads
    return NUMERIC if role == MODEL and payload in kinds else BYTES
