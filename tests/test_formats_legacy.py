"""LegacyMetadata: canonical XML bytes, hardened reading, validation, class colours."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from czbuild.errors import MetadataError
from czbuild.formats.legacy import LegacyMetadata, class_colors, parse_xml

EXAMPLE_ID = "3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10"
EXAMPLE_XML = (
    b"<?xml version='1.0' encoding='utf-8'?>\n"
    b'<Model Version="3.1.0"><Id>3f1c2a9e-7b4d-5e8a-9c61-0d2b4f6a8e10</Id>'
    b"<ModelName>Nuclei</ModelName><Status>Trained</Status>"
    b"<FeatureExtractor>DeepNeuralNetwork</FeatureExtractor><Postprocessing />"
    b"<ColorHandling>ConvertToMonochrome</ColorHandling>"
    b'<Channels><Item PixelType="Gray16" /></Channels>'
    b'<TrainingClasses><Item colB="0" colG="0" colR="255" LabelValue="1" Name="Background" />'
    b'<Item colB="0" colG="255" colR="0" LabelValue="2" Name="Nucleus" /></TrainingClasses>'
    b"<BorderSize>32</BorderSize></Model>"
)
REFERENCE_COLOURS = Path(__file__).parent / "data" / "formats" / "class_colors_ref1000.json"


def meta(**changes: object) -> LegacyMetadata:
    base = LegacyMetadata(
        name="Nuclei",
        color_handling="ConvertToMonochrome",
        pixel_types=("Gray16",),
        classes=("Background", "Nucleus"),
        border_size=32,
        id=EXAMPLE_ID,
    )
    return dataclasses.replace(base, **changes)


# --- canonical bytes ------------------------------------------------------------------------


def test_section_3_2_example_is_byte_exact() -> None:
    assert meta().to_xml_bytes() == EXAMPLE_XML


def test_escaping_rules() -> None:
    out = meta(name='A&B <"x">', classes=('c&"d"', "e<f>\ng\th\ri")).to_xml_bytes()
    assert b'<ModelName>A&amp;B &lt;"x"&gt;</ModelName>' in out
    assert b'Name="c&amp;&quot;d&quot;"' in out
    assert b'Name="e&lt;f&gt;&#10;g&#09;h&#13;i"' in out
    assert LegacyMetadata.from_xml_bytes(out).classes == ('c&"d"', "e<f>\ng\th\ri")


def test_non_ascii_is_raw_utf8_and_one_line_after_header() -> None:
    out = meta(name="K\u00f6rperzellen \u00b5", classes=("Hintergrund", "Zellkern")).to_xml_bytes()
    assert "<ModelName>K\u00f6rperzellen \u00b5</ModelName>".encode() in out
    header, body = out.split(b"\n", 1)
    assert header == b"<?xml version='1.0' encoding='utf-8'?>"
    assert b"\n" not in body and not body.endswith((b" ", b"\n"))


def test_version_3_0_0_and_several_channels() -> None:
    out = meta(version="3.0.0").to_xml_bytes()
    assert b'<Model Version="3.0.0">' in out
    many = meta(pixel_types=("Gray8", "Gray16", "Bgr24"), color_handling="SplitRgb").to_xml_bytes()
    assert (
        b'<Channels><Item PixelType="Gray8" /><Item PixelType="Gray16" />'
        b'<Item PixelType="Bgr24" /></Channels>'
    ) in many
    assert b"<ColorHandling>SplitRgb</ColorHandling>" in many


def test_label_values_and_colours_follow_class_order() -> None:
    out = meta(classes=tuple(f"c{i}" for i in range(1, 6))).to_xml_bytes().decode()
    assert '<Item colB="0" colG="0" colR="255" LabelValue="4" Name="c4" />' in out
    assert '<Item colB="0" colG="255" colR="254" LabelValue="5" Name="c5" />' in out


def test_without_id_writes_an_empty_id_element() -> None:
    out = meta(id=None).to_xml_bytes(include_id=False)
    assert b"<Id /><ModelName>" in out
    assert out == EXAMPLE_XML.replace(f"<Id>{EXAMPLE_ID}</Id>".encode(), b"<Id />")
    with pytest.raises(MetadataError, match="^Id:"):
        meta(id=None).to_xml_bytes()


def test_id_is_written_lower_case() -> None:
    assert meta(id=EXAMPLE_ID.upper()).to_xml_bytes() == EXAMPLE_XML


@pytest.mark.parametrize(
    "value",
    [
        meta(),
        meta(version="3.0.0"),
        meta(classes=("only",)),
        meta(border_size=0),
        meta(pixel_types=("Bgr24", "Gray8"), name="n & m"),
    ],
    ids=["example", "3.0.0", "single-class", "border-0", "channels-escaped"],
)
def test_round_trip(value: LegacyMetadata) -> None:
    again = LegacyMetadata.from_xml_bytes(value.to_xml_bytes())
    assert again == value
    assert again.to_xml_bytes() == value.to_xml_bytes()


# --- hardened, tolerant reading -------------------------------------------------------------

ZEN_STYLE = """<?xml version="1.0" encoding="utf-8"?>
<Model Version="3.1.0">
  <Id>AB1C2A9E-7B4D-5E8A-9C61-0D2B4F6A8E10</Id>
  <ModelName>Made by ZEN</ModelName>
  <Status>Trained</Status>
  <ScaleInputsByBitdepth>true</ScaleInputsByBitdepth>
  <TotalTileHeight>1024</TotalTileHeight>
  <ColorHandling>SplitRgb</ColorHandling>
  <Channels>
    <Item PixelType="Bgr24"/>
    <Item PixelType="Gray8"/>
  </Channels>
  <TrainingClasses>
    <Item Name="Cells" LabelValue="1" colR="255" colG="0" colB="0"/>
  </TrainingClasses>
  <BorderSize> 16 </BorderSize>
</Model>
"""


def test_reads_zen_style_file_keeping_id_name_and_extras() -> None:
    value, extra = parse_xml(ZEN_STYLE.encode("utf-8"))
    assert value.id == "AB1C2A9E-7B4D-5E8A-9C61-0D2B4F6A8E10"
    assert value.name == "Made by ZEN"
    assert value.pixel_types == ("Bgr24", "Gray8")
    assert value.classes == ("Cells",)
    assert value.border_size == 16
    assert value.color_handling == "SplitRgb"
    assert extra == {"ScaleInputsByBitdepth": "true", "TotalTileHeight": "1024"}
    value.validate()


def test_reads_utf8_bom_and_utf16() -> None:
    assert LegacyMetadata.from_xml_bytes(b"\xef\xbb\xbf" + EXAMPLE_XML) == meta()
    utf16 = EXAMPLE_XML.decode().replace("utf-8", "utf-16").encode("utf-16")
    assert LegacyMetadata.from_xml_bytes(utf16) == meta()


def test_missing_id_reads_as_none() -> None:
    data = EXAMPLE_XML.replace(f"<Id>{EXAMPLE_ID}</Id>".encode(), b"")
    assert LegacyMetadata.from_xml_bytes(data).id is None


UNSAFE = [
    ("doctype", b'<?xml version="1.0"?><!DOCTYPE Model><Model Version="3.1.0"/>'),
    (
        "billion-laughs",
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;">]><Model Version="3.1.0">&lol2;</Model>'
        ),
    ),
    (
        "external-entity",
        b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><Model>&x;</Model>',
    ),
    ("lower-case", b'<!doctype Model><Model Version="3.1.0"/>'),
    (
        "utf16-doctype",
        '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE m><Model/>'.encode("utf-16"),
    ),
]


@pytest.mark.parametrize("data", [c[1] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_dtd_and_entities_are_refused_before_parsing(data: bytes) -> None:
    with pytest.raises(MetadataError, match="DOCTYPE or ENTITY"):
        LegacyMetadata.from_xml_bytes(data)


BROKEN = [
    ("malformed", b"<Model Version='3.1.0'><Id>x</Model>", "", "malformed"),
    ("not-utf8", b"<Model>\xff\xfe\xfa</Model>", "", "UTF-8"),
    ("wrong-root", b"<Czann Version='3.1.0'/>", "Model", "<Czann>"),
    ("no-version", EXAMPLE_XML.replace(b' Version="3.1.0"', b""), "Version", "Version"),
    (
        "no-channels",
        EXAMPLE_XML.replace(b'<Channels><Item PixelType="Gray16" /></Channels>', b""),
        "Channels",
        "missing",
    ),
    (
        "no-border",
        EXAMPLE_XML.replace(b"<BorderSize>32</BorderSize>", b""),
        "BorderSize",
        "missing",
    ),
    ("border-text", EXAMPLE_XML.replace(b">32<", b">wide<"), "BorderSize", "integer"),
    (
        "no-color-handling",
        EXAMPLE_XML.replace(b"<ColorHandling>ConvertToMonochrome</ColorHandling>", b""),
        "ColorHandling",
        "missing",
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "fragment"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN]
)
def test_broken_xml_names_the_element(data: bytes, field: str, fragment: str) -> None:
    with pytest.raises(MetadataError) as info:
        LegacyMetadata.from_xml_bytes(data)
    assert info.value.field == field
    assert fragment in str(info.value)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        meta(),
        meta(classes=("One",)),
        meta(border_size=0),
        meta(version="3.0.0"),
        meta(pixel_types=("Bgr24", "Gray8", "Bgra32")),
        meta(id=None),
        meta(id=EXAMPLE_ID.upper()),
    ],
    ids=["example", "single-class", "border-0", "3.0.0", "many-channels", "no-id-yet", "upper-id"],
)
def test_valid_metadata_passes(value: LegacyMetadata) -> None:
    value.validate()
    assert value.problems() == []


INVALID = [
    ("version", meta(version="3.2.0"), "Version", "unknown"),
    ("id", meta(id="model-1"), "Id", "not a UUID"),
    ("empty-name", meta(name=""), "ModelName", "empty"),
    ("name-not-string", meta(name=None), "ModelName", "string"),
    ("name-control-char", meta(name="a\x00b"), "ModelName", "control character"),
    ("color-handling", meta(color_handling="Monochrome"), "ColorHandling", "did you mean"),
    ("pixel-type-unknown", meta(pixel_types=("Grey16",)), "PixelType", "did you mean Gray16"),
    ("pixel-type-complex", meta(pixel_types=("Gray64ComplexFloat",)), "PixelType", "complex"),
    ("pixel-type-complex-rgb", meta(pixel_types=("Bgr192ComplexFloat",)), "PixelType", "complex"),
    ("no-pixel-types", meta(pixel_types=()), "PixelType", "at least one"),
    ("pixel-type-string", meta(pixel_types="Gray16"), "PixelType", "write ('Gray16',)"),
    ("classes-string", meta(classes="Cells"), "Classes", "write ('Cells',)"),
    ("classes-none", meta(classes=None), "Classes", "must be a list"),
    (
        "3.0.0-two-channels",
        meta(version="3.0.0", pixel_types=("Gray8", "Gray8")),
        "PixelType",
        "exactly one",
    ),
    ("no-classes", meta(classes=()), "Classes", "at least one"),
    ("class-not-string", meta(classes=("a", 1)), "Classes", "class names"),
    ("class-control-char", meta(classes=("a\x07",)), "Classes", "control character"),
    ("border-negative", meta(border_size=-1), "BorderSize", ">= 0"),
    ("border-bool", meta(border_size=True), "BorderSize", "integer"),
    ("border-float", meta(border_size=1.5), "BorderSize", "integer"),
]


@pytest.mark.parametrize(
    ("value", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_each_rule_raises_naming_the_key(value: LegacyMetadata, field: str, fragment: str) -> None:
    with pytest.raises(MetadataError) as info:
        value.validate()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert fragment in str(info.value)


def test_to_xml_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(MetadataError, match="^Classes:"):
        meta(classes=("a\x01",)).to_xml_bytes()


# --- class colours --------------------------------------------------------------------------

TABLE = {
    1: (255, 0, 0),
    2: (0, 255, 0),
    3: (0, 0, 255),
    4: (255, 0, 0),
    5: (254, 255, 0),
    6: (0, 254, 255),
    7: (0, 255, 127),
    8: (255, 0, 127),
    9: (127, 0, 255),
    10: (255, 127, 0),
    11: (127, 255, 0),
    12: (0, 127, 255),
    13: (0, 255, 170),
    14: (255, 0, 84),
    15: (169, 0, 255),
    16: (255, 170, 0),
}


def test_first_16_colours_match_the_format_table() -> None:
    assert class_colors(16) == [TABLE[n] for n in range(1, 17)]


def test_colour_4_duplicates_colour_1() -> None:
    colours = class_colors(4)
    assert colours[3] == colours[0] == (255, 0, 0)


def test_first_1000_colours_match_the_reference_writer() -> None:
    # Generated once from the reference package's colour generator (see docs/formats.md).
    reference = [tuple(c) for c in json.loads(REFERENCE_COLOURS.read_text())]
    assert len(reference) == 1000
    assert class_colors(1000) == reference


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000], ids=lambda n: f"n={n}")
def test_colours_are_bytes_and_prefix_stable(n: int) -> None:
    colours = class_colors(n)
    assert len(colours) == n
    assert all(isinstance(v, int) and 0 <= v <= 255 for c in colours for v in c)
    assert colours == class_colors(1000)[:n]


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        class_colors(-1)
