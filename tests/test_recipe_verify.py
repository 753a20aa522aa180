"""The recipe's ``verify:`` section: defaults, validation into the spec, and the spec digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from czbuild.recipe import load_variants
from czbuild.recipe.schema import Recipe
from czbuild.verify.settings import BUILD, STANDALONE, VerifySettings

DATA = Path(__file__).parent / "data" / "recipes"

BASE = """\
model:
  path: _files/tiny.keras
tile: 256
metadata:
  type: SingleClassSemanticSegmentation
  classes: [Background, Cell]
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "_files", tmp_path / "recipes" / "_files")
    return tmp_path


def _variant(project: Path, extra: str = "", overrides: tuple[str, ...] = ()):
    (project / "recipes" / "r.yaml").write_text(BASE + extra, encoding="utf-8")
    (variant,) = load_variants(["r"], list(overrides), project_dir=project)
    return variant


def test_defaults_fill_the_spec(project: Path) -> None:
    spec = _variant(project).spec
    assert spec.verify == VerifySettings()
    assert spec.to_plain()["verify"] == {
        "fidelity_tolerance": 1e-5,
        "seam_tolerance": 1e-5,
        "tiling": True,
        "seed": 0,
        "tiling_max_tile": 256,
        "overlap_analysis": False,
    }


def test_recipe_values_reach_the_spec(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "recipes")
    variants = load_variants(["valid_verify"], project_dir=tmp_path)
    # the deprecated single tolerance sets both
    assert variants[0].spec.verify == VerifySettings(
        fidelity_tolerance=1e-3,
        seam_tolerance=1e-3,
        tiling=True,
        seed=7,
        tiling_max_tile=0,
        overlap_analysis=True,
    )


def test_fidelity_and_seam_tolerances_are_separate(project: Path) -> None:
    variant = _variant(project, "verify:\n  fidelity_tolerance: 1.0e-6\n  seam_tolerance: 1.0e-3\n")
    assert variant.spec.verify.fidelity_tolerance == 1e-6
    assert variant.spec.verify.seam_tolerance == 1e-3
    # a named tolerance wins over the deprecated one
    both = _variant(project, "verify:\n  tolerance: 1.0e-4\n  seam_tolerance: 1.0e-2\n")
    assert (both.spec.verify.fidelity_tolerance, both.spec.verify.seam_tolerance) == (1e-4, 1e-2)
    assert "tolerance" not in both.spec.to_plain()["verify"]


def test_one_defaults_table() -> None:
    """The recipe schema's defaults are the settings type's (no second table)."""
    assert Recipe.model_fields["verify"].default_factory().model_dump() == BUILD.to_plain()
    assert VerifySettings() == BUILD


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (True, "always"),
        (False, "on-failure"),
        ("always", "always"),
        ("on-failure", "on-failure"),
        ("never", "never"),
    ],
    ids=["true", "false", "always", "on-failure", "never"],
)
def test_overlap_analysis_means_the_same_everywhere(value, mode: str) -> None:
    assert VerifySettings(overlap_analysis=value).analysis == mode
    assert BUILD.replace(overlap_analysis=value).analysis == mode
    assert STANDALONE.replace(overlap_analysis=value).analysis == mode


def test_a_built_artifact_is_verified_with_the_variant_settings(project: Path) -> None:
    from czbuild.verify.api import build_settings

    variant = _variant(project, "verify:\n  seed: 5\n  overlap_analysis: true\n")
    assert build_settings(variant) == VerifySettings(seed=5, overlap_analysis=True)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"fidelity_tolerance": 2.0}, "fidelity_tolerance"),
        ({"seam_tolerance": -1.0}, "seam_tolerance"),
        ({"seed": -1}, "seed"),
        ({"tiling_max_tile": 64}, "tiling_max_tile"),
        ({"overlap_analysis": "sometimes"}, "overlap_analysis"),
        ({"tiling": "yes"}, "tiling"),
    ],
    ids=["fidelity-tolerance", "seam-tolerance", "seed", "max-tile", "analysis", "tiling"],
)
def test_bad_settings_name_the_key(changes: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        VerifySettings(**changes)
    with pytest.raises(ValueError, match=key):
        VerifySettings.from_plain({"tolerance": 1e-5, **changes})
    with pytest.raises(ValueError, match="tolerance"):
        VerifySettings.from_plain({"tolerance": 2.0})


def test_plain_form_round_trips() -> None:
    settings = VerifySettings(
        fidelity_tolerance=1e-3,
        seam_tolerance=1e-2,
        seed=7,
        tiling_max_tile=0,
        overlap_analysis=True,
    )
    assert VerifySettings.from_plain(settings.to_plain()) == settings
    with pytest.raises(ValueError, match="unknown verify setting"):
        VerifySettings.from_plain({"tolerence": 1e-3})


@pytest.mark.parametrize(
    ("extra", "same"),
    [
        ("verify:\n  tolerance: 1.0e-5\n  seed: 0\n", True),
        ("verify: {}\n", True),
        ("verify:\n  tolerance: 1.0e-4\n", False),
        ("verify:\n  seam_tolerance: 1.0e-4\n", False),
        ("verify:\n  fidelity_tolerance: 1.0e-5\n  seam_tolerance: 1.0e-5\n", True),
        ("verify:\n  tiling: false\n", False),
        ("verify:\n  seed: 3\n", False),
        ("verify:\n  tiling_max_tile: 512\n", False),
        ("verify:\n  overlap_analysis: true\n", False),
    ],
    ids=[
        "explicit-defaults",
        "empty",
        "tolerance",
        "seam-tolerance",
        "named-defaults",
        "tiling",
        "seed",
        "max-tile",
        "analysis",
    ],
)
def test_settings_are_part_of_the_digest(project: Path, extra: str, same: bool) -> None:
    plain = _variant(project).digest
    assert (_variant(project, extra).digest == plain) is same


def test_command_line_override_and_sweep(project: Path) -> None:
    variant = _variant(project, overrides=("+verify.tolerance=1e-3",))
    assert variant.spec.verify.fidelity_tolerance == variant.spec.verify.seam_tolerance == 1e-3
    (project / "recipes" / "r.yaml").write_text(
        BASE + "sweep:\n  verify.tiling: [true, false]\n", encoding="utf-8"
    )
    variants = load_variants(["r"], project_dir=project)
    assert sorted(v.spec.verify.tiling for v in variants) == [False, True]


def test_accept_reaches_the_spec_and_the_build_settings(project: Path) -> None:
    from czbuild.verify.api import build_settings

    plain = _variant(project)
    assert "accept" not in plain.spec.to_plain()["verify"]  # older specs keep their digest
    assert _variant(project, "verify: {accept: []}\n").digest == plain.digest
    accepted = _variant(project, "verify:\n  accept: [semantics.output_range]\n")
    assert accepted.spec.verify.accept == ("semantics.output_range",)
    assert accepted.digest != plain.digest
    assert build_settings(accepted).accept == ("semantics.output_range",)
    assert build_settings(plain).accept == ()


def test_accept_takes_only_acceptable_checks(project: Path) -> None:
    from czbuild.errors import RecipeError

    with pytest.raises(RecipeError, match=r"verify\.accept.*semantics\.output_range"):
        _variant(project, "verify:\n  accept: [fidelity]\n")


def test_acceptable_checks_are_real_check_names() -> None:
    from czbuild.verify.samples import SEAMS as SAMPLE_SEAMS
    from czbuild.verify.semantics import OUTPUT_RANGE
    from czbuild.verify.settings import ACCEPTABLE_CHECKS
    from czbuild.verify.tiling import SEAMS

    assert ACCEPTABLE_CHECKS == (OUTPUT_RANGE, SEAMS, SAMPLE_SEAMS)
