"""Legacy CZMODEL XML metadata: model, validation, canonical XML, hardened reader (format 3.2).

The canonical bytes are produced by hand (not by an XML library) so that they are exactly
the section 3.2 form on every Python version: the declaration with single quotes, LF, the
tree on one line, attributes in a fixed order, empty elements as ``<Name />``.
"""

from __future__ import annotations

import colorsys
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import Any, Final

from czbuild.errors import MetadataError
from czbuild.formats import vocab
from czbuild.formats.ids import uuid_problem
from czbuild.formats.text import display_text_problem

XML_DECLARATION: Final = b"<?xml version='1.0' encoding='utf-8'?>\n"
STATUS: Final = "Trained"
FEATURE_EXTRACTOR: Final = "DeepNeuralNetwork"
#: Elements czbuild writes; anything else in a file is kept only as "extra" when reading.
KNOWN_ELEMENTS: Final = (
    "Id",
    "ModelName",
    "Status",
    "FeatureExtractor",
    "Postprocessing",
    "ColorHandling",
    "Channels",
    "TrainingClasses",
    "BorderSize",
)

# Characters XML 1.0 cannot carry at all (the Char production), even escaped.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FORBIDDEN_MARKUP: Final = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# Hue sixth b for i mod 6 (0 red, 1 yellow, 2 green, 3 cyan, 4 blue, 5 magenta).
_HUE_SIXTH: Final = (2, 5, 4, 0, 1, 3)


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """The (R, G, B) colours ZEN's reference writer gives classes 1..n (section 3.2).

    Colour 1 is pure red; colour 4 repeats it (a reference defect kept for compatibility).

    Args:
        n: Number of classes (>= 0).

    Returns:
        ``n`` tuples of ints in 0..255.
    """
    if n < 0:
        raise ValueError(f"class count must be >= 0, got {n}")
    colours: list[tuple[int, int, int]] = []
    for number in range(1, n + 1):
        if number == 1:
            colours.append((255, 0, 0))
            continue
        i = 0 if number == 2 else number - 1
        k = i // 6
        u = _HUE_SIXTH[i % 6] + k / (k + 1)
        hue = (u * (1.0 / 6) + 1.0) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.5, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(text: str) -> str:
    return (
        _escape_text(text)
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\t", "&#09;")
        .replace("\r", "&#13;")
    )


def _element(name: str, text: str = "", inner: str = "") -> str:
    body = _escape_text(text) + inner
    return f"<{name}>{body}</{name}>" if body else f"<{name} />"


def _empty(name: str, attrs: list[tuple[str, str]]) -> str:
    joined = "".join(f' {key}="{_escape_attr(value)}"' for key, value in attrs)
    return f"<{name}{joined} />"


def border_problem(border_size: int, tile: tuple[int, ...]) -> MetadataError | None:
    """``BorderSize`` against the tile: ZEN hides ``border_size`` pixels on each side, so the
    tile must be larger than twice the border."""
    if 2 * border_size >= min(tile):
        return MetadataError(
            "BorderSize",
            f"a border of {border_size} on each side leaves nothing of a {tile[0]}x{tile[1]} "
            f"tile; the tile must be larger than {2 * border_size}",
        )
    return None


@dataclass(frozen=True)
class LegacyMetadata:
    """Metadata of a legacy ``.czmodel`` file (the ``<id>.xml`` member).

    Attributes:
        name: ``ModelName``, display name.
        color_handling: ``ColorHandling``, one of :data:`vocab.COLOR_HANDLINGS`.
        pixel_types: ``Channels`` items, one ``PixelType`` per input channel entry.
        classes: ``TrainingClasses`` names in label order (LabelValue 1..N).
        border_size: ``BorderSize``, per-side margin in pixels.
        id: ``Id``, a UUID; ``None`` means "derive at packaging".
        version: ``Model/@Version``, ``"3.0.0"`` (SavedModel) or ``"3.1.0"`` (ONNX).
    """

    name: str
    color_handling: str
    pixel_types: tuple[str, ...]
    classes: tuple[str, ...]
    border_size: int
    id: str | None = None
    version: str = vocab.DEFAULT_LEGACY_VERSION

    def __post_init__(self) -> None:
        for field in ("pixel_types", "classes"):
            value = getattr(self, field)
            if isinstance(value, list):
                object.__setattr__(self, field, tuple(value))

    # --- validation ----------------------------------------------------------------------

    def validate(self) -> None:
        """Check vocabularies and values (section 6 rules 4 and 8 for legacy files).

        Raises:
            MetadataError: For the first violation, naming the spec key (``ModelName``,
                ``ColorHandling``, ``PixelType``, ``Classes``, ``BorderSize``, ``Id``,
                ``Version``).
        """
        problems = self.problems()
        if problems:
            raise problems[0]

    def problems(self) -> list[MetadataError]:
        """All violations :meth:`validate` would raise (empty if valid)."""
        out: list[MetadataError] = []

        def bad(key: str | MetadataError, message: str) -> None:
            out.append(key if isinstance(key, MetadataError) else MetadataError(key, message))

        if self.version not in vocab.LEGACY_VERSIONS:
            bad(
                "Version",
                f"unknown legacy CZMODEL version {self.version!r}; known: "
                f"{', '.join(vocab.LEGACY_VERSIONS)}",
            )
        if self.id is not None and (why := uuid_problem(self.id)):
            bad("Id", why)
        if not isinstance(self.name, str):
            bad("ModelName", f"must be a string, got {type(self.name).__name__}")
        elif not self.name.strip():
            bad("ModelName", "must not be empty; give the model a display name")
        elif why := display_text_problem(self.name):
            bad("ModelName", f"{self.name!r} {why}")
        if self.color_handling not in vocab.COLOR_HANDLINGS:
            bad(
                "ColorHandling",
                f"unknown value {self.color_handling!r}"
                + vocab.did_you_mean(self.color_handling, vocab.COLOR_HANDLINGS),
            )
        self._check_pixel_types(bad)
        self._check_classes(bad)
        size = self.border_size
        if isinstance(size, bool) or not isinstance(size, int):
            bad("BorderSize", f"must be an integer number of pixels, got {size!r}")
        elif size < 0:
            bad("BorderSize", f"must be >= 0, got {size}")
        return out

    def _check_pixel_types(self, bad: Any) -> None:
        types = self.pixel_types
        if why := _list_problem(types, "('Gray8',)"):
            bad("PixelType", why)
            return
        if not types:
            bad("PixelType", "needs at least one pixel type, one per input channel entry")
            return
        for value in types:
            if value not in vocab.PIXEL_TYPES:
                bad(
                    "PixelType",
                    f"unknown pixel type {value!r}" + vocab.did_you_mean(value, vocab.PIXEL_TYPES),
                )
                return
            if value in vocab.COMPLEX_PIXEL_TYPES:
                bad(
                    "PixelType",
                    f"{value} (complex data) is not supported by czbuild; use a "
                    "real-valued pixel type",
                )
                return
        if self.version == "3.0.0" and len(types) != 1:
            bad(
                "PixelType",
                f"version 3.0.0 takes exactly one pixel type, got {len(types)}; "
                "use version 3.1.0 for several",
            )

    def _check_classes(self, bad: Any) -> None:
        classes = self.classes
        if why := _list_problem(classes, "('Background', 'Cells')"):
            bad("Classes", why)
        elif not all(isinstance(c, str) for c in classes):
            bad("Classes", f"must be a list of class names, got {classes!r}")
        elif not classes:
            bad("Classes", "needs at least one class name")
        else:
            for i, name in enumerate(classes):
                if why := display_text_problem(name):
                    bad(MetadataError("Classes", f"class name {name!r} {why}", index=i), "")
                    break

    # --- serialisation -------------------------------------------------------------------

    def to_xml_bytes(self, *, include_id: bool = True) -> bytes:
        """The canonical XML bytes of section 3.2.

        Args:
            include_id: Write an empty ``<Id />`` when False (the basis of :func:`derive_id`).

        Raises:
            MetadataError: If the id is missing (when included) or a value cannot be
                written (wrong type, character XML cannot carry).
        """
        if include_id and self.id is None:
            raise MetadataError(
                "Id",
                "not set; write_czmodel derives it from the content, or pass id=... explicitly",
            )
        ident = self.id.lower() if include_id and self.id is not None else ""
        strings = [("Id", ident), ("ModelName", self.name), ("ColorHandling", self.color_handling)]
        strings += [("PixelType", p) for p in self.pixel_types]
        strings += [("Classes", c) for c in self.classes]
        for key, value in strings:
            if not isinstance(value, str):
                raise MetadataError(key, f"must be a string, got {value!r}")
            if _NOT_XML_CHAR.search(value):
                raise MetadataError(key, f"{value!r} contains a character XML cannot carry")
        size = self.border_size
        if isinstance(size, bool) or not isinstance(size, int):
            raise MetadataError("BorderSize", f"must be an integer, got {size!r}")
        channels = "".join(_empty("Item", [("PixelType", p)]) for p in self.pixel_types)
        items = []
        for label, (name, (r, g, b)) in enumerate(
            zip(self.classes, class_colors(len(self.classes))), start=1
        ):
            attrs = [
                ("colB", str(b)),
                ("colG", str(g)),
                ("colR", str(r)),
                ("LabelValue", str(label)),
                ("Name", name),
            ]
            items.append(_empty("Item", attrs))
        body = (
            _element("Id", ident)
            + _element("ModelName", self.name)
            + _element("Status", STATUS)
            + _element("FeatureExtractor", FEATURE_EXTRACTOR)
            + _element("Postprocessing")
            + _element("ColorHandling", self.color_handling)
            + _element("Channels", inner=channels)
            + _element("TrainingClasses", inner="".join(items))
            + _element("BorderSize", str(int(size)))
        )
        root = f'<Model Version="{_escape_attr(str(self.version))}">{body}</Model>'
        return XML_DECLARATION + root.encode("utf-8")

    def with_id(self, id: str) -> LegacyMetadata:
        """A copy with ``id`` set."""
        return replace(self, id=id)

    # --- reading -------------------------------------------------------------------------

    @classmethod
    def from_xml_bytes(cls, data: bytes) -> LegacyMetadata:
        """Read legacy XML metadata with a hardened parser (see :func:`parse_xml`)."""
        return parse_xml(data)[0]


def _list_problem(value: object, example: str) -> str | None:
    if isinstance(value, str):
        return f"must be a list, got the string {value!r}; write ({value!r},)"
    if not isinstance(value, tuple):
        return f"must be a list like {example}, got {value!r}"
    return None


def _decode_for_check(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(data: bytes) -> tuple[LegacyMetadata, dict[str, str]]:
    """Parse legacy XML metadata; also return the elements czbuild does not know.

    Hardened: any ``<!DOCTYPE`` / ``<!ENTITY`` is refused before parsing, so no DTD,
    entity expansion or external resource is ever processed. The reader does not rely on
    layout, ignores namespaces and unknown elements, keeps the file's ``Id`` and
    ``ModelName``, reads any number of ``Channels`` items and one or more classes.

    Args:
        data: The bytes of the ``<id>.xml`` member.

    Returns:
        The metadata (``id`` None if the file has no ``Id``) and a dict of unknown child
        elements of ``Model`` (e.g. ``ScaleInputsByBitdepth``) to their text.

    Raises:
        MetadataError: If the XML is malformed, unsafe, or misses a required element; the
            field names the element.
    """
    try:
        text = _decode_for_check(bytes(data))
    except UnicodeDecodeError as exc:
        raise MetadataError("", f"metadata XML is not valid UTF-8/UTF-16: {exc}") from exc
    if _FORBIDDEN_MARKUP.search(text):
        raise MetadataError(
            "",
            "metadata XML contains a DOCTYPE or ENTITY declaration; refused "
            "for safety (ZEN metadata never needs one)",
        )
    try:
        root = ET.fromstring(bytes(data))
    except ET.ParseError as exc:
        raise MetadataError("", f"metadata XML is malformed: {exc}") from exc
    if _local(root.tag) != "Model":
        raise MetadataError("Model", f"root element must be <Model>, got <{_local(root.tag)}>")
    children: dict[str, ET.Element] = {}
    extra: dict[str, str] = {}
    for child in root:
        name = _local(child.tag)
        if name in KNOWN_ELEMENTS:
            children.setdefault(name, child)
        else:
            extra.setdefault(name, (child.text or "").strip())

    def required(name: str) -> ET.Element:
        if name not in children:
            raise MetadataError(name, f"element <{name}> is missing from the metadata XML")
        return children[name]

    version = root.get("Version")
    if version is None:
        raise MetadataError("Version", "attribute Version is missing on <Model>")
    pixel_types = tuple(
        item.get("PixelType", "") for item in required("Channels") if _local(item.tag) == "Item"
    )
    classes = tuple(
        item.get("Name", "") for item in required("TrainingClasses") if _local(item.tag) == "Item"
    )
    border_text = (required("BorderSize").text or "").strip()
    try:
        border_size = int(border_text)
    except ValueError:
        raise MetadataError("BorderSize", f"must be an integer, got {border_text!r}") from None
    ident_el = children.get("Id")
    ident = (ident_el.text or "").strip() if ident_el is not None else ""
    name_el = children.get("ModelName")
    metadata = LegacyMetadata(
        name=(name_el.text or "") if name_el is not None else "",
        color_handling=(required("ColorHandling").text or "").strip(),
        pixel_types=pixel_types,
        classes=classes,
        border_size=border_size,
        id=ident or None,
        version=version,
    )
    return metadata, extra
