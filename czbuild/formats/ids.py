"""Deterministic model ids (czmodel-format.md section 7.1).

The reference tool gives every build a random ``uuid4``; czbuild derives the id from the
content instead, so the same metadata and model bytes always give the same id and any change
gives a different one::

    id = uuid5(CZBUILD_NAMESPACE, sha256(metadata_without_id || model_bytes).hexdigest())

``metadata_without_id`` is, for CZANN, the canonical ``model.json`` bytes with the ``Id`` key
omitted and, for legacy CZMODEL, the canonical XML bytes with an empty ``<Id />`` element
(see :meth:`CzannMetadata.to_json_bytes` / :meth:`LegacyMetadata.to_xml_bytes` with
``include_id=False``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Final

#: Namespace of every derived id. Fixed forever: changing it changes every artifact's id.
#: It is ``uuid5(NAMESPACE_URL, "czbuild:artifact-id:v1")``, written out as a constant.
CZBUILD_NAMESPACE: Final = uuid.UUID("6fc85df0-3cf6-5175-9b90-bfaf255f0eed")

_UUID_RE: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def derive_id(metadata_without_id: bytes, model_bytes: bytes) -> str:
    """Derive the id of an artifact from its content.

    Args:
        metadata_without_id: Canonical metadata bytes without the id (see module docstring).
        model_bytes: The network payload exactly as packed (ONNX or SavedModel zip).

    Returns:
        A lower-case, hyphenated, 36-character UUID (version 5).
    """
    digest = hashlib.sha256(bytes(metadata_without_id) + bytes(model_bytes)).hexdigest()
    return str(uuid.uuid5(CZBUILD_NAMESPACE, digest))


def is_uuid(text: object) -> bool:
    """True if ``text`` is a hyphenated 36-character UUID string (either letter case)."""
    return isinstance(text, str) and _UUID_RE.match(text) is not None


def uuid_problem(text: object) -> str | None:
    """Explain why ``text`` is not an acceptable model id, or return None if it is.

    Accepted: the hyphenated 36-character form in either letter case. Braces, ``urn:uuid:``
    prefixes and the 32-digit form are refused with the canonical spelling as the fix.
    """
    if not isinstance(text, str):
        return f"must be a UUID string, got {type(text).__name__}"
    if is_uuid(text):
        return None
    try:
        canonical = str(uuid.UUID(text))
    except ValueError:
        return f"{text!r} is not a UUID; use the form 3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"
    return f"{text!r} is not in hyphenated 36-character form; write {canonical!r}"
