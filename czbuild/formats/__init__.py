"""What a CZANN / CZMODEL file *is*: metadata, canonical JSON/XML, deterministic zips, safe reading.

No TensorFlow and no ONNX here: importing this package is cheap (``czbuild inspect`` relies on
it). The byte-level reference is ``czmodel-format.md``; czbuild's own choices are in
``docs/formats.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from czbuild.formats import vocab
    from czbuild.formats.archive import (
        czann_members,
        czmodel_members,
        inspect,
        unpack,
        write_czann,
        write_czmodel,
    )
    from czbuild.formats.container import Container, Member, open_container, read_container
    from czbuild.formats.czann import CzannMetadata, infer_version
    from czbuild.formats.ids import CZBUILD_NAMESPACE, derive_id, is_uuid
    from czbuild.formats.layout import Layout, family_of, layout_of
    from czbuild.formats.legacy import LegacyMetadata, class_colors, parse_xml
    from czbuild.formats.reader import (
        DEFAULT_MAX_BYTES,
        Artifact,
        MemberInfo,
        load_artifact,
        payload_kind,
        read_artifact,
    )
    from czbuild.formats.schema import load_schema, validate_model_json
    from czbuild.formats.ziputil import atomic_write, zip_bytes, zip_date_time, zip_directory

# Imported on first use (PEP 562): a no-op build reads a few vocabularies, not the zip
# reader, the extractor and the schema machinery.
_LAZY: dict[str, str] = {
    "Artifact": "czbuild.formats.reader",
    "CZBUILD_NAMESPACE": "czbuild.formats.ids",
    "Container": "czbuild.formats.container",
    "CzannMetadata": "czbuild.formats.czann",
    "DEFAULT_MAX_BYTES": "czbuild.formats.reader",
    "Layout": "czbuild.formats.layout",
    "LegacyMetadata": "czbuild.formats.legacy",
    "Member": "czbuild.formats.container",
    "MemberInfo": "czbuild.formats.reader",
    "atomic_write": "czbuild.formats.ziputil",
    "class_colors": "czbuild.formats.legacy",
    "czann_members": "czbuild.formats.archive",
    "czmodel_members": "czbuild.formats.archive",
    "derive_id": "czbuild.formats.ids",
    "family_of": "czbuild.formats.layout",
    "infer_version": "czbuild.formats.czann",
    "inspect": "czbuild.formats.archive",
    "is_uuid": "czbuild.formats.ids",
    "layout_of": "czbuild.formats.layout",
    "load_artifact": "czbuild.formats.reader",
    "load_schema": "czbuild.formats.schema",
    "open_container": "czbuild.formats.container",
    "parse_xml": "czbuild.formats.legacy",
    "payload_kind": "czbuild.formats.reader",
    "read_artifact": "czbuild.formats.reader",
    "read_container": "czbuild.formats.container",
    "unpack": "czbuild.formats.archive",
    "validate_model_json": "czbuild.formats.schema",
    "vocab": "czbuild.formats.vocab",
    "write_czann": "czbuild.formats.archive",
    "write_czmodel": "czbuild.formats.archive",
    "zip_bytes": "czbuild.formats.ziputil",
    "zip_date_time": "czbuild.formats.ziputil",
    "zip_directory": "czbuild.formats.ziputil",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = import_module(module)
    if module != f"{__name__}.{name}":
        value = getattr(value, name)
    globals()[name] = value
    return value


__all__ = [
    "CZBUILD_NAMESPACE",
    "DEFAULT_MAX_BYTES",
    "Artifact",
    "Container",
    "CzannMetadata",
    "Layout",
    "LegacyMetadata",
    "Member",
    "MemberInfo",
    "atomic_write",
    "class_colors",
    "czann_members",
    "czmodel_members",
    "derive_id",
    "family_of",
    "infer_version",
    "inspect",
    "is_uuid",
    "layout_of",
    "load_artifact",
    "load_schema",
    "open_container",
    "parse_xml",
    "payload_kind",
    "read_artifact",
    "read_container",
    "unpack",
    "validate_model_json",
    "vocab",
    "write_czann",
    "write_czmodel",
    "zip_bytes",
    "zip_date_time",
    "zip_directory",
]
