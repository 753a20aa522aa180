"""``czbuild build``, ``czbuild status`` and ``czbuild clean``: thin adapters over czbuild.builder.

Arguments mix recipe names and Hydra overrides (``czbuild build nuclei tile=256,512``). None of
these commands imports TensorFlow in this process: conversions run in worker subprocesses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from czbuild.cli.lock_report import lock_failure, render_check, render_lock_update
from czbuild.cli.options import (
    args_argument,
    committed_names,
    debug_enabled,
    in_process_option,
    jobs_option,
    out_dir,
    out_option,
    project_dir,
    project_option,
    ray_address,
    ray_option,
    verbose,
    wait_option,
)
from czbuild.errors import BuildError


def _load(args: tuple[str, ...], project: Path, out: Path) -> list[Any]:
    from czbuild.builder.stamps import state_dir
    from czbuild.builder.variants import load, split_arguments

    names, overrides = split_arguments(args)
    return load(names, overrides, project, cache_dir=state_dir(out))


@click.command("build")
@args_argument
@jobs_option
@out_option
@project_option
@click.option(
    "--continue/--no-continue",
    "keep_going",
    default=True,
    show_default=True,
    help="Keep building the other variants after one fails.",
)
@click.option("--force", is_flag=True, help="Rebuild even artifacts that are up to date.")
@wait_option("another build")
@in_process_option
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the verification of each new artifact (the recipe's verify: section); "
    "`czbuild status` then shows it as not verified.",
)
@ray_option
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
    ray: str | None,
) -> None:
    """Build the artifacts of RECIPEs (default: all) that are out of date.

    OVERRIDEs use Hydra syntax and may sweep: tile=256,512 'range(256,1025,256)'.
    """
    from czbuild.builder import BuildOptions, build
    from czbuild.builder.variants import split_arguments
    from czbuild.release.build_lock import build_locked, update_lock_after_build

    names, overrides = split_arguments(args)
    ray = ray_address(ray)
    if locked:
        committed_names(args, "--locked")
    project = project_dir(project, args)
    out = out_dir(out, project)
    variants = _load(args, project, out)
    if not variants:
        click.echo("czbuild: no recipes to build")
        return
    options = BuildOptions(
        out_dir=out,
        jobs=jobs,
        force=force,
        lock_timeout=wait,
        in_process=in_process,
        debug=debug_enabled(ctx),
        verify=not no_verify,
        ray=ray,
    )
    if locked:
        click.echo(
            f"czbuild: --locked: rebuilding {len(variants)} variant(s) in a scratch folder "
            "and comparing with czbuild.lock"
        )
        locked_build = build_locked(
            variants,
            options,
            project_dir=project,
            full=not names,
            stream=sys.stdout,
            verbose=verbose(ctx),
        )
        for line in render_check(locked_build.check, verbose=verbose(ctx)):
            click.echo(line)
        if not locked_build.ok:
            raise lock_failure(locked_build.check)
        click.echo(f"czbuild: {len(variants)} artifact(s) match czbuild.lock; installed in {out}")
        return
    report = build(variants, options, verbose=verbose(ctx), keep_going=keep_going)
    update = update_lock_after_build(
        report,
        variants,
        project_dir=project,
        out_dir=out,
        names=names,
        overrides=overrides,
        lock_timeout=wait,
    )
    if update is None:
        click.echo(
            "czbuild: czbuild.lock not updated: command-line overrides build variants "
            "the recipes do not define"
        )
    else:
        note = render_lock_update(update)
        if note:
            click.echo(note)
    summary = report.summary
    if summary.failed:
        failed = ", ".join(sorted(summary.failed))
        raise BuildError(f"{len(summary.failed)} of {summary.planned} variants failed: {failed}")
    if report.exit_code != 0:
        raise BuildError(f"the build did not complete (doit exit code {report.exit_code})")


@click.command("status")
@args_argument
@out_option
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--check", is_flag=True, help="Exit with code 1 if anything is out of date.")
def status_cmd(
    args: tuple[str, ...], out: Path | None, project: Path | None, as_json: bool, check: bool
) -> None:
    """Say which artifacts are up to date, and why the others are not."""
    from czbuild.builder import status

    project = project_dir(project, args)
    out = out_dir(out, project)
    variants = _load(args, project, out)
    results = status(variants, out)
    stale = [r for r in results if not r.up_to_date]
    if as_json:
        click.echo(
            json.dumps({"out_dir": str(out), "variants": [r.to_json() for r in results]}, indent=2)
        )
    else:
        for result in results:
            label = "up to date " if result.up_to_date else "out of date"
            note = "  [not verified]" if result.verified is False else ""
            if result.warnings:
                note += f"  [{len(result.warnings)} warning(s)]"
            click.echo(f"{label}  {result.variant}  ({result.output}){note}")
            for reason in result.reasons:
                click.echo(f"             - {reason.message}")
            for warning in result.warnings:
                click.echo(f"             ! warning: {warning.line()}")
        click.echo(
            f"czbuild: {len(results) - len(stale)} up to date, {len(stale)} out of date ({out})"
        )
    if check and stale:
        raise click.exceptions.Exit(1)


@click.command("clean")
@args_argument
@out_option
@project_option
@click.option(
    "--orphans",
    is_flag=True,
    help="Remove only artifacts whose recipe or sweep point no longer exists.",
)
@wait_option("a running build")
def clean_cmd(
    args: tuple[str, ...], out: Path | None, project: Path | None, orphans: bool, wait: float
) -> None:
    """Remove built artifacts and their build records.

    Without RECIPEs, every artifact czbuild built in the output folder is removed (the recipes
    are not even read); with RECIPEs (and OVERRIDEs), only those variants.
    """
    from czbuild.builder import clean

    project = project_dir(project, args)
    out = out_dir(out, project)
    variants = _load(args, project, out) if (args or orphans) else None
    removed = clean(variants, out, orphans=orphans, lock_timeout=wait)
    for path in removed:
        click.echo(f"removed  {path}")
    click.echo(f"czbuild: removed {len(removed)} artifact(s) from {out}")
