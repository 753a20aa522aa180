"""What a CZANN / CZMODEL file *is*: metadata, canonical JSON/XML, deterministic zips, safe reading.

No TensorFlow and no ONNX here: importing this package is cheap (``czbuild inspect`` relies on
it). The byte-level reference is ``czmodel-format.md``; czbuild's own choices are in
``docs/formats.md``.
"""

from __future__ import annotations

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
