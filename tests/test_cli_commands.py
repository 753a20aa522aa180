"""The command table of ``czbuild``: every command module registers, none silently drops."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

import czbuild.cli as cli_package
from czbuild.release.build_lock import update_lock_after_build


def _defined_commands() -> dict[str, set[str]]:
    """Module name -> names of the click commands it defines at module level."""
    found: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(cli_package.__path__, "czbuild.cli."):
        module = importlib.import_module(info.name)
        names = {
            name
            for name, value in vars(module).items()
            if isinstance(value, click.Command)
            and getattr(value.callback, "__module__", None) == info.name
        }
        if names:
            found[info.name] = names
    return found


def test_every_command_defined_in_the_cli_package_is_registered() -> None:
    listed = {module: set(attrs) for module, attrs in cli_package._COMMAND_MODULES.items()}
    assert _defined_commands() == listed
    assert sorted(cli_package.cli.commands) == [
        "build",
        "check",
        "clean",
        "convert",
        "init",
        "inspect",
        "list",
        "predict",
        "release",
        "schema",
        "show",
        "status",
        "unpack",
        "verify",
    ]


def test_a_command_module_that_fails_to_import_stops_the_registration(monkeypatch) -> None:
    monkeypatch.setattr(
        cli_package, "_COMMAND_MODULES", {"czbuild.cli.no_such_cmds": ("thing_cmd",)}
    )
    with pytest.raises(ImportError, match=r"czbuild\.cli\.no_such_cmds failed to import"):
        cli_package._register()


def test_a_listed_command_that_is_missing_stops_the_registration(monkeypatch) -> None:
    monkeypatch.setattr(
        cli_package, "_COMMAND_MODULES", {"czbuild.cli.build_cmds": ("build_cmd", "nope_cmd")}
    )
    with pytest.raises(
        ImportError, match=r"czbuild\.cli\.build_cmds defines no command 'nope_cmd'"
    ):
        cli_package._register()


def test_a_build_with_overrides_leaves_the_lock_alone(tmp_path: Path) -> None:
    report = SimpleNamespace(summary=SimpleNamespace(failed={}), exit_code=0)
    lock = tmp_path / "czbuild.lock"
    update = update_lock_after_build(
        report,
        [],
        project_dir=tmp_path,
        out_dir=tmp_path / "build",
        names=["nuclei"],
        overrides=["tile=512"],
    )
    assert update is None
    assert not lock.exists()
