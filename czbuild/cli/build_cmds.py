"""``czbuild build``, ``czbuild status`` and ``czbuild clean``: thin adapters over czbuild.builder.

Arguments mix recipe names and Hydra overrides (``czbuild build nuclei tile=256,512``). None of
these commands imports TensorFlow in this process: conversions run in worker subprocesses.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from czbuild.errors import BuildError

_DEFAULT_OUT = "build"


def _project_dir(project: Path | None, args: tuple[str, ...] = ()) -> Path:
    """``--project``, else the project of a recipe named by path, else the cwd's project."""
    from czbuild.recipe.project import project_for

    return project_for(args, project)


def _out_dir(out: Path | None, project_dir: Path) -> Path:
    return Path(out).absolute() if out else project_dir / _DEFAULT_OUT


def _verbosity(ctx: click.Context) -> int:
    while ctx is not None:
        if "verbose" in ctx.params:
            return int(ctx.params["verbose"] or 0)
        ctx = ctx.parent  # type: ignore[assignment]
    return 0


def _load(args: tuple[str, ...], project_dir: Path, out_dir: Path) -> list:
    from czbuild.builder.stamps import state_dir
    from czbuild.builder.variants import load, split_arguments

    names, overrides = split_arguments(args)
    return load(names, overrides, project_dir, cache_dir=state_dir(out_dir))


_project_option = click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder holding recipes/ (default: the nearest one at or above the current "
    "directory).",
)
_out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: <project>/build).",
)
_args = click.argument("args", nargs=-1, metavar="[RECIPE ...] [OVERRIDE ...]")


@click.command("build")
@_args
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Conversion workers running at once (each one a separate process).",
)
@_out_option
@_project_option
@click.option(
    "--continue/--no-continue",
    "keep_going",
    default=True,
    show_default=True,
    help="Keep building the other variants after one fails.",
)
@click.option("--force", is_flag=True, help="Rebuild even artifacts that are up to date.")
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for another build of the same output folder.",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="Convert in this process instead of worker processes (debugging).",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the verification of each new artifact (the recipe's verify: section); "
    "`czbuild status` then shows it as not verified.",
)
@click.option(
    "--locked",
    is_flag=True,
    help="Rebuild in a scratch folder and fail if any artifact differs from "
    "czbuild.lock (which is then not updated); see `czbuild check`.",
)
@click.pass_context
def build_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    jobs: int,
    out: Path | None,
    project: Path | None,
    keep_going: bool,
    force: bool,
    wait: float,
    in_process: bool,
    locked: bool,
    no_verify: bool,
) -> None:
    """Build the artifacts of RECIPEs (default: all) that are out of date.

    OVERRIDEs use Hydra syntax and may sweep: tile=256,512 'range(256,1025,256)'.
    """
    from czbuild.builder import BuildOptions, build
    from czbuild.cli import debug_enabled

    project_dir = _project_dir(project, args)
    out_dir = _out_dir(out, project_dir)
    variants = _load(args, project_dir, out_dir)
    if not variants:
        click.echo("czbuild: no recipes to build")
        return
    options = BuildOptions(
        out_dir=out_dir,
        jobs=jobs,
        force=force,
        lock_timeout=wait,
        in_process=in_process,
        debug=debug_enabled(ctx),
        verify=not no_verify,
    )
    if locked:  # czbuild.release: check against czbuild.lock, then install the checked artifacts
        from czbuild.cli.release_cmds import build_locked

        return build_locked(
            variants, options, project_dir=project_dir, args=args, verbose=_verbosity(ctx) > 0
        )
    report = build(variants, options, verbose=_verbosity(ctx) > 0, keep_going=keep_going)
    from czbuild.cli.release_cmds import update_lock_after_build  # czbuild.lock entries

    update_lock_after_build(
        report, variants, project_dir=project_dir, out_dir=out_dir, args=args, wait=wait
    )
    summary = report.summary
    if summary.failed:
        names = ", ".join(sorted(summary.failed))
        raise BuildError(f"{len(summary.failed)} of {summary.planned} variants failed: {names}")
    if report.exit_code != 0:
        raise BuildError(f"the build did not complete (doit exit code {report.exit_code})")


@click.command("status")
@_args
@_out_option
@_project_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--check", is_flag=True, help="Exit with code 1 if anything is out of date.")
def status_cmd(
    args: tuple[str, ...], out: Path | None, project: Path | None, as_json: bool, check: bool
) -> None:
    """Say which artifacts are up to date, and why the others are not."""
    from czbuild.builder import status

    project_dir = _project_dir(project, args)
    out_dir = _out_dir(out, project_dir)
    variants = _load(args, project_dir, out_dir)
    results = status(variants, out_dir)
    stale = [r for r in results if not r.up_to_date]
    if as_json:
        click.echo(
            json.dumps(
                {"out_dir": str(out_dir), "variants": [r.to_json() for r in results]}, indent=2
            )
        )
    else:
        for result in results:
            label = "up to date " if result.up_to_date else "out of date"
            note = "  [not verified]" if result.verified is False else ""
            click.echo(f"{label}  {result.variant}  ({result.output}){note}")
            for reason in result.reasons:
                click.echo(f"             - {reason.message}")
        click.echo(
            f"czbuild: {len(results) - len(stale)} up to date, {len(stale)} out of date ({out_dir})"
        )
    if check and stale:
        raise click.exceptions.Exit(1)


@click.command("clean")
@_args
@_out_option
@_project_option
@click.option(
    "--orphans",
    is_flag=True,
    help="Remove only artifacts whose recipe or sweep point no longer exists.",
)
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for a running build of the same output folder.",
)
def clean_cmd(
    args: tuple[str, ...], out: Path | None, project: Path | None, orphans: bool, wait: float
) -> None:
    """Remove built artifacts and their build records.

    Without RECIPEs, every artifact czbuild built in the output folder is removed (the recipes
    are not even read); with RECIPEs (and OVERRIDEs), only those variants.
    """
    from czbuild.builder import clean

    project_dir = _project_dir(project, args)
    out_dir = _out_dir(out, project_dir)
    variants = _load(args, project_dir, out_dir) if (args or orphans) else None
    removed = clean(variants, out_dir, orphans=orphans, lock_timeout=wait)
    for path in removed:
        click.echo(f"removed  {path}")
    click.echo(f"czbuild: removed {len(removed)} artifact(s) from {out_dir}")
