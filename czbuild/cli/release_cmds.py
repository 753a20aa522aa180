"""``czbuild check`` and ``czbuild release``.

Thin adapters over :mod:`czbuild.release`: parse, call, render, exit code. The lock file side
of ``czbuild build`` is :mod:`czbuild.release.build_lock`; the text of lock checks is
:mod:`czbuild.cli.lock_report`. None of this imports TensorFlow unless a numeric payload
comparison or verification runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from czbuild.cli.lock_report import lock_failure, render_check
from czbuild.cli.options import (
    committed_names,
    debug_enabled,
    folder_option,
    in_process_option,
    jobs_option,
    out_dir,
    project_dir,
    project_option,
    ray_address,
    ray_option,
    verbose,
)


def _variants(names: Sequence[str], project: Path) -> list[Any]:
    from czbuild.builder.variants import load

    return load(list(names), [], project)  # no compose cache: nothing is written


def _options(
    out: Path,
    jobs: int,
    in_process: bool,
    ctx: click.Context,
    *,
    verify: bool = True,
    ray: str | None = None,
) -> Any:
    from czbuild.builder import BuildOptions

    return BuildOptions(
        out_dir=out,
        jobs=jobs,
        in_process=in_process,
        debug=debug_enabled(ctx),
        verify=verify,
        ray=ray_address(ray),
    )


@click.command("check")
@click.argument("recipes", nargs=-1, metavar="[RECIPE ...]")
@folder_option(
    "--out",
    help="Build folder holding the previous artifacts, used for field-level "
    "explanations (default: <project>/build). Never written.",
)
@project_option
@jobs_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@in_process_option
@ray_option
@click.pass_context
def check_cmd(
    ctx: click.Context,
    recipes: tuple[str, ...],
    out: Path | None,
    project: Path | None,
    jobs: int,
    as_json: bool,
    in_process: bool,
    ray: str | None,
) -> None:
    """Rebuild RECIPEs (default: all) from scratch and compare them with czbuild.lock.

    Every artifact is converted again in a temporary folder; any difference from the lock is
    explained member by member (metadata field, ONNX initializer, entry time ...). Exit code 1
    if a variant differs, is missing from the lock or is stale in it. Neither the artifacts in
    the build folder nor the lock are changed; the verification reports of rebuilds that fail
    are kept in ``<build>/.czbuild/check-reports/``.
    """
    from czbuild.release.check import check_lock

    names = committed_names(recipes, "check")
    project = project_dir(project, names)
    out = out_dir(out, project)
    variants = _variants(names, project)
    if not variants:
        click.echo("czbuild: no recipes to check")
        return
    report = check_lock(
        variants,
        project_dir=project,
        options=_options(out, jobs, in_process, ctx, ray=ray),
        reference_dirs=[out],
        full=not names,
        stream=None if as_json else sys.stdout,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in render_check(report, verbose=verbose(ctx)):
            click.echo(line)
    if not report.ok:
        if as_json:
            raise click.exceptions.Exit(1)
        raise lock_failure(report)


@click.command("release")
@folder_option(
    "--out",
    help="Release folder (default: <project>/dist). Replaced as a whole; refused if "
    "it exists and is not a czbuild release.",
)
@project_option
@jobs_option
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="Release even if recipes/, configs/, czbuild.lock or model inputs have "
    "uncommitted changes (recorded in release.json).",
)
@click.option(
    "--allow-stale-lock",
    is_flag=True,
    help="Release even if czbuild.lock lacks a variant, has extra entries, or an "
    "artifact differs from it (recorded in release.json).",
)
@click.option("--no-verify", is_flag=True, help="Do not run `czbuild verify` on the artifacts.")
@click.option(
    "--allow-warnings",
    is_flag=True,
    help="Release even artifacts whose verification warned about a check the recipe does "
    "not accept in verify.accept (recorded in release.json).",
)
@folder_option(
    "--build-dir",
    help="Build folder with previous artifacts for explanations (default: "
    "<project>/build). Never written.",
)
@click.option("--json", "as_json", is_flag=True, help="Print release.json instead of a summary.")
@in_process_option
@ray_option
@click.pass_context
def release_cmd(
    ctx: click.Context,
    out: Path | None,
    project: Path | None,
    jobs: int,
    allow_dirty: bool,
    allow_stale_lock: bool,
    no_verify: bool,
    allow_warnings: bool,
    build_dir: Path | None,
    as_json: bool,
    in_process: bool,
    ray: str | None,
) -> None:
    """Build every recipe variant from scratch, check it against czbuild.lock, verify it, and
    write it to dist/ with SHA256SUMS and release.json.

    Refuses uncommitted release inputs (--allow-dirty), a stale lock (--allow-stale-lock)
    and verification warnings the recipes do not accept (--allow-warnings).
    """
    from czbuild.release.release import release

    project = project_dir(project)
    reference = out_dir(build_dir, project)
    dist = Path(out).absolute() if out else project / "dist"
    variants = _variants([], project)
    report = release(
        variants,
        project_dir=project,
        dist_dir=dist,
        options=_options(reference, jobs, in_process, ctx, verify=not no_verify, ray=ray),
        allow_dirty=allow_dirty,
        allow_stale_lock=allow_stale_lock,
        verify=not no_verify,
        allow_warnings=allow_warnings,
        reference_dirs=[reference],
        stream=None if as_json else sys.stdout,
    )
    if as_json:
        click.echo(json.dumps(report.manifest, indent=2, sort_keys=True))
        return
    for a in report.artifacts:
        warned = f", {len(a.verify.warnings)} warning(s)" if a.verify.warnings else ""
        click.echo(
            f"released  {a.path}  sha256 {a.sha256[:16]}  (lock: {a.lock_status}, "
            f"verify: {a.verify.status}{warned})"
        )
        for warning in a.verify.warnings:
            click.echo(f"          warning: {warning.line()}")
    for note in report.notes:
        click.echo(f"note: {note}")
    git = report.git
    where = (
        f"git {git.commit[:12]}{f' ({git.tag})' if git.tag else ''}"
        if git.commit
        else "no git commit"
    )
    click.echo(
        f"czbuild: released {len(report.artifacts)} artifact(s) to {report.dist_dir} "
        f"with SHA256SUMS and release.json; {where}"
    )
