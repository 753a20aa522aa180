"""Options and context helpers shared by the command modules of :mod:`czbuild.cli`.

Every command module imports its shared options from here, never from another command
module, so the command modules do not depend on each other. Nothing here imports
TensorFlow, Hydra or doit: ``czbuild --help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "DEFAULT_OUT",
    "args_argument",
    "committed_names",
    "debug_enabled",
    "folder_option",
    "in_process_option",
    "jobs_option",
    "out_dir",
    "out_option",
    "project_dir",
    "project_option",
    "ray_address",
    "ray_option",
    "verbose",
    "wait_option",
]

_F = TypeVar("_F", bound=Callable[..., Any])

DEFAULT_OUT = "build"
"""The build folder under the project when ``--out`` is not given."""


def folder_option(*names: str, help: str) -> Callable[[_F], _F]:
    """An option naming a folder (a :class:`~pathlib.Path`, None when not given)."""
    return click.option(
        *names, type=click.Path(file_okay=False, path_type=Path), default=None, help=help
    )


def wait_option(what: str) -> Callable[[_F], _F]:
    """``--wait SECONDS`` for ``what`` (another build) of the same output folder."""
    return click.option(
        "--wait",
        "wait",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help=f"Seconds to wait for {what} of the same output folder.",
    )


project_option = folder_option(
    "--project",
    help="Project folder holding recipes/ (default: the project of a recipe named by path, "
    "else the nearest one at or above the current directory).",
)

out_option = folder_option("--out", help="Output folder (default: <project>/build).")

in_process_option = click.option(
    "--in-process",
    is_flag=True,
    help="Convert in this process instead of worker processes (debugging).",
)

jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Conversion workers running at once (each one a separate process).",
)

ray_option = click.option(
    "--ray",
    "ray",
    metavar="ADDRESS",
    default=None,
    envvar="CZBUILD_RAY_ADDRESS",  # czbuild.builder.ray_executor.ADDRESS_ENV
    show_envvar=True,
    help="Run the conversions on a Ray cluster: 'local' starts one on this machine, 'auto' "
    "joins this node's cluster, else a ray.init address. -j N > 1 then sets the number of "
    "Ray workers (default: the cluster's CPUs). Needs: pip install 'czbuild[ray]'.",
)


def ray_address(value: str | None) -> str | None:
    """``--ray``'s address (None without it); a one-line error when Ray is not installed."""
    if not value:
        return None
    from czbuild.builder.ray_executor import require_ray

    require_ray()
    return value


args_argument = click.argument("args", nargs=-1, metavar="[RECIPE ...] [OVERRIDE ...]")


def project_dir(project: Path | None, names: Sequence[str] = ()) -> Path:
    """``--project``, else the project of a recipe named by path, else the cwd's project."""
    from czbuild.recipe.project import project_for

    return project_for(names, project)


def out_dir(out: Path | None, project: Path) -> Path:
    """``--out`` made absolute, else ``<project>/build``."""
    return Path(out).absolute() if out else project / DEFAULT_OUT


def debug_enabled(ctx: click.Context | None = None) -> bool:
    """Whether ``--debug`` was given on this command line or ``CZBUILD_DEBUG`` is set."""
    if os.environ.get("CZBUILD_DEBUG", "") not in ("", "0"):
        return True
    current = ctx or click.get_current_context(silent=True)
    while current is not None:
        if current.obj and current.obj.get("debug"):
            return True
        current = current.parent
    return False


def verbose(ctx: click.Context | None) -> bool:
    """Whether ``-v`` was given to ``czbuild`` (the group owns the counter)."""
    current = ctx
    while current is not None:
        if "verbose" in current.params:
            return int(current.params["verbose"] or 0) > 0
        current = current.parent
    return False


def committed_names(args: Sequence[str], what: str) -> list[str]:
    """The recipe names among ``args``; a usage error if any word is an override.

    ``check`` and ``build --locked`` compare with ``czbuild.lock``, which describes only the
    variants of the recipes as committed.
    """
    from czbuild.builder.variants import split_arguments

    names, overrides = split_arguments(args)
    if overrides:
        raise click.UsageError(
            f"{what} checks the recipes as committed; command-line overrides "
            f"({' '.join(overrides)}) build variants the lock does not describe"
        )
    return names
