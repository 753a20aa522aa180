"""Cross-layer check: metadata the recipe layer accepts, the formats layer accepts too.

Each valid recipe (fixtures and bundled examples) is resolved, turned into the format's
metadata object with plausible shapes (what the model would give), and validated by
:mod:`czbuild.formats` — so a recipe never passes ``czbuild show`` only to fail at packaging
on a rule the recipe layer could have checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from czbuild.formats import vocab
from czbuild.recipe import RecipeSpec, load_variants

czann = pytest.importorskip("czbuild.formats.czann")
legacy = pytest.importorskip("czbuild.formats.legacy")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "recipes"
FIXTURES = sorted(p.stem for p in DATA.glob("valid_*.yaml"))


def _metadata(spec: RecipeSpec) -> object:
    md = spec.metadata
    spatial = tuple(spec.spatial_dims or (64, 64))  # (h, w) or, 3D, (z, h, w)
    channels = vocab.PIXEL_TYPE_CHANNELS[md.pixel_type[0]] if md.pixel_type else 1
    out = len(md.classes) if md.classes else channels
    if spec.format == "czann":
        return czann.CzannMetadata(
            type=md.type,
            input_shape=(*spatial, channels),
            output_shape=(*spatial, out),
            classes=md.classes,
            min_overlap=md.min_overlap,
            model_name=md.model_name,
            scaling=md.scaling,
            id=md.id,
            format_version=spec.format_version,
        )
    return legacy.LegacyMetadata(
        name=md.model_name,
        color_handling=md.color_handling,
        pixel_types=md.pixel_type,
        classes=md.classes,
        border_size=md.border_size,
        id=md.id,
        version=spec.format_version,
    )


def _validate(spec: RecipeSpec) -> None:
    metadata = _metadata(spec)
    if spec.format == "czann":
        metadata.validate(allow_experimental_types=spec.allow_experimental_types)
    else:
        metadata.validate()


@pytest.mark.parametrize("name", FIXTURES, ids=FIXTURES)
def test_fixture_metadata_passes_the_formats_layer(tmp_path: Path, name: str) -> None:
    shutil.copytree(DATA, tmp_path / "recipes")
    for variant in load_variants([name], project_dir=tmp_path):
        _validate(variant.spec)


def test_example_metadata_passes_the_formats_layer() -> None:
    for variant in load_variants(project_dir=ROOT):
        _validate(variant.spec)
