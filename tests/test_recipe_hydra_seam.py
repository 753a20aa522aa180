"""Pins the seam to Hydra's private API (:mod:`czbuild.recipe.hydra_overrides`).

Each value override applied by the seam to a composed config must give what Hydra's public
``compose(overrides=...)`` gives, and fail with the same message. A Hydra upgrade that changes
the private function (or its semantics) fails here instead of silently changing recipes.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from czbuild.recipe.hydra_overrides import apply_value_overrides

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
tile: 256
name: nuclei
metadata:
  classes: [bg, fg]
  model_name: Nuclei
items: [1, 2]
derived: ${tile}
"""


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seam")
    (folder / "recipe.yaml").write_text(CONFIG, encoding="utf-8")
    return folder


def _compose(config_dir: Path, overrides: list[str]) -> Any:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name="recipe", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def _seam(config_dir: Path, overrides: list[str]) -> Any:
    cfg = copy.deepcopy(_compose(config_dir, []))
    parsed = OverridesParser.create().parse_overrides(overrides)
    apply_value_overrides(cfg, parsed)
    return cfg


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=False)


def test_hydra_is_the_pinned_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (pin,) = re.findall(r'"hydra-core==([^"]+)"', pyproject)
    assert hydra.__version__ == pin


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["tile=512"], id="set"),
        pytest.param(["metadata.classes=[a,b,c]"], id="set-list"),
        pytest.param(["metadata={classes: [x]}"], id="set-dict-merges"),
        pytest.param(["+metadata.scaling=[1e-7,1e-7]"], id="add"),
        pytest.param(["++tile=7", "++new.key=3"], id="force-add"),
        pytest.param(["~metadata.model_name"], id="delete"),
        pytest.param(["~tile=256"], id="delete-with-value"),
        pytest.param(["name=${metadata.model_name}"], id="interpolation"),
        pytest.param(["tile=512", "~tile", "+tile=1024"], id="in-order"),
    ],
)
def test_the_seam_applies_overrides_like_public_compose(
    config_dir: Path, overrides: list[str]
) -> None:
    expected = _plain(_compose(config_dir, overrides))
    assert _plain(_seam(config_dir, overrides)) == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param("missing=1", "Could not override 'missing'", id="set-missing"),
        pytest.param("+tile=1", "Could not append to config", id="add-existing"),
        pytest.param("~nope", "Could not delete from config", id="delete-missing"),
        pytest.param("~tile=999", "Could not delete from config", id="delete-wrong-value"),
    ],
)
def test_the_seam_fails_like_public_compose(config_dir: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigCompositionException) as public:
        _compose(config_dir, [override])
    with pytest.raises(ConfigCompositionException) as seam:
        _seam(config_dir, [override])
    assert str(seam.value).startswith(message)
    assert str(seam.value) == str(public.value)
