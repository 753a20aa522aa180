"""Shared pytest setup: quiet TensorFlow, and the fixtures most test modules share.

Helpers that are not fixtures live in the ``support`` package (``tests/support/``):
``support.build_fakes`` (fake variants, the fake converter), ``support.release_fakes``,
``support.cli`` (the CLI in this process), ``support.fresh_python``, ``support.numpy_models``.
A module needing a different project defines its own ``project`` fixture (pytest's override).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

RECIPE_DATA = Path(__file__).parent / "data" / "recipes"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A project whose recipes/ is a copy of tests/data/recipes (valid and invalid recipes)."""
    shutil.copytree(RECIPE_DATA, tmp_path / "recipes")
    return tmp_path


@pytest.fixture()
def tiny_project(tmp_path: Path) -> Path:
    """A buildable project: 2 recipes sweeping tile 32, 64 over a tiny seeded Keras factory."""
    from support.build_fakes import make_recipe_project

    return make_recipe_project(tmp_path / "proj", n_recipes=2, tiles=(32, 64))
