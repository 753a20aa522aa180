"""Deterministic ids: uuid5 over sha256 of the content."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from czbuild.formats.ids import CZBUILD_NAMESPACE, derive_id, is_uuid, uuid_problem


def test_namespace_is_the_documented_constant() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, "czbuild:artifact-id:v1") == CZBUILD_NAMESPACE
    assert str(CZBUILD_NAMESPACE) == "6fc85df0-3cf6-5175-9b90-bfaf255f0eed"


def test_derivation_formula() -> None:
    meta, model = b'{"Type": "Regression"}', b"\x08\x07onnx"
    digest = hashlib.sha256(meta + model).hexdigest()
    assert derive_id(meta, model) == str(uuid.uuid5(CZBUILD_NAMESPACE, digest))


def test_known_value_never_changes() -> None:
    # Pinned: a change here changes the id of every artifact ever built.
    assert derive_id(b"metadata", b"model") == "89e313ad-9493-5700-92dd-c5573c4eadc9"


def test_same_content_same_id_and_form() -> None:
    first = derive_id(b"a", b"b")
    assert first == derive_id(b"a", b"b")
    assert first == first.lower() and len(first) == 36 and first.count("-") == 4
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    ("meta", "model"),
    [(b"a2", b"b"), (b"a", b"b2"), (b"b", b"a")],
    ids=["metadata-changed", "model-changed", "swapped"],
)
def test_different_content_different_id(meta: bytes, model: bytes) -> None:
    assert derive_id(meta, model) != derive_id(b"a", b"b")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10", True),
        ("3F1C2A9E-7B4D-5E8A-9C61-0D2B4F6A8E10", True),
        ("3f1c2a9e7b4d5e8a9c610d2b4f6a8e10", False),
        ("{3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10}", False),
        ("urn:uuid:3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10", False),
        ("3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e1g", False),
        ("", False),
        (None, False),
    ],
    ids=["lower", "upper", "no-hyphens", "braces", "urn", "bad-digit", "empty", "none"],
)
def test_uuid_checks(text: object, ok: bool) -> None:
    assert is_uuid(text) is ok
    assert (uuid_problem(text) is None) is ok
