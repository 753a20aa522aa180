"""The wheel ships the bundled config groups (QA finding: after a normal ``pip install``,
``czbuild show rgb`` failed with ``no config group 'target'``).

The repository's top-level ``configs/`` stays the single source; ``pyproject.toml`` maps it
to the package ``czbuild.configs``. The wheel is built from a copy of the repository in a
temporary folder (building writes ``build/`` and ``*.egg-info`` next to ``pyproject.toml``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_COPY = ("pyproject.toml", "README.md", "czbuild", "configs")

RECIPE = """\
defaults: [/target: zen-core-3.4, /preprocessing: rgb-to-bgr, _self_]
model: {factory: ../models/net.py:build}
tile: 256
metadata: {type: SingleClassSemanticSegmentation, classes: [bg, fg]}
"""


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_packages_list_every_czbuild_package_and_the_configs() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "czbuild").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert set(setuptools["packages"]) == found | {"czbuild.configs"}
    assert setuptools["package-dir"] == {"czbuild.configs": "configs"}
    assert setuptools["package-data"]["czbuild.configs"] == ["*/*.yaml"]
    assert not (ROOT / "czbuild" / "configs").exists()  # configs/ is the only source


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("wheel")
    work = tmp_path_factory.mktemp("wheel")
    repo = work / "repo"
    repo.mkdir()
    for name in _COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, repo / name)
    out = work / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(repo),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("czbuild-*.whl")
    return built


@pytest.mark.slow  # builds a wheel (~5 s)
def test_the_wheel_holds_the_bundled_configs_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"czbuild/configs/{p.relative_to(ROOT / 'configs').as_posix()}"
        for p in (ROOT / "configs").glob("*/*.yaml")
    }
    assert {
        "czbuild/configs/target/zen-blue-3.13.yaml",
        "czbuild/configs/preprocessing/rgb-to-bgr.yaml",
    } <= configs
    assert configs <= names
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "czbuild").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules <= names
    assert "czbuild/schemas/recipe.schema.json" in names
    assert "czbuild/formats/data/tf2_0_ops.json" in names


def _dependency_dirs() -> list[str]:
    """The site-packages folders the running interpreter imports czbuild's dependencies from.

    Works the same on a system Python and inside a venv (where ``--system-site-packages``
    of a new venv would point at the *base* interpreter, which lacks the dependencies). The
    folders are added to the new venv through a ``.pth`` file: its lines are appended to
    ``sys.path`` after the venv's own site-packages, so the installed wheel wins over any
    editable install of czbuild there, and ``.pth`` files inside them (editable finders)
    are not run.
    """
    return [
        entry
        for entry in sys.path
        if Path(entry).name in ("site-packages", "dist-packages") and Path(entry).is_dir()
    ]


def _venv_site_packages(python: Path, env: dict[str, str]) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run(
        [str(python), "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return Path(out.stdout.strip())


def test_the_dependency_dirs_hold_the_dependencies() -> None:
    dirs = _dependency_dirs()
    for module in ("hydra", "click", "pydantic", "doit"):
        assert any((Path(d) / module).is_dir() for d in dirs), (module, dirs)


@pytest.mark.slow
def test_an_installed_wheel_composes_bundled_groups(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    site_packages = _venv_site_packages(python, env)
    (site_packages / "czbuild-test-dependencies.pth").write_text(
        "".join(f"{d}\n" for d in _dependency_dirs()), encoding="utf-8"
    )
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "user-project"  # no configs/ of its own
    (project / "recipes").mkdir(parents=True)
    (project / "models").mkdir()
    (project / "models" / "net.py").write_text("def build():\n    raise NotImplementedError\n")
    (project / "recipes" / "rgb.yaml").write_text(RECIPE, encoding="utf-8")
    czbuild = bindir / ("czbuild.exe" if os.name == "nt" else "czbuild")
    proc = subprocess.run(
        [str(czbuild), "show", "rgb"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "# variant: rgb" in proc.stdout
    assert "format_version: 1.1.0" in proc.stdout and "op: rgb_to_bgr" in proc.stdout
    where = subprocess.run(
        [str(python), "-c", "import czbuild.recipe.project as p; print(p.BUNDLED_CONFIGS)"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).parts[-2:] == ("czbuild", "configs")
    assert str(ROOT) not in where.stdout
