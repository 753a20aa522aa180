"""``czbuild check``, ``czbuild release``, and the lock file side of ``czbuild build``.

Thin adapters over :mod:`czbuild.release`: parse, call, render, exit code. ``build_cmds``
calls :func:`update_lock_after_build` after every build and :func:`build_locked` for
``build --locked``. None of this imports TensorFlow unless a numeric payload comparison or
verification runs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from czbuild.errors import BuildError, LockMismatchError
from czbuild.scratch import make_scratch


def _variants(names: Sequence[str], project_dir: Path) -> list[Any]:
    from czbuild.builder.variants import load

    return load(list(names), [], project_dir)  # no compose cache: nothing is written


def _no_overrides(args: Sequence[str], what: str) -> list[str]:
    from czbuild.builder.variants import split_arguments

    names, overrides = split_arguments(args)
    if overrides:
        raise click.UsageError(
            f"{what} checks the recipes as committed; command-line overrides "
            f"({' '.join(overrides)}) build variants the lock does not describe"
        )
    return names


# --- rendering -----------------------------------------------------------------------------------


_LABELS = {
    "match": "match",
    "numeric": "numeric",
    "differs": "DIFFERS",
    "modified": "MODIFIED",
    "missing": "MISSING",
    "stale": "STALE",
    "failed": "FAILED",
}


def render_check(report: Any, *, verbose: bool = False) -> list[str]:
    """Text lines for a :class:`czbuild.release.CheckReport`."""
    from czbuild.release import format_differences

    lines = []
    for r in report.results:
        lines.append(f"{_LABELS[r.status]:<8} {r.variant}  ({r.output})")
        if not r.ok or r.status == "numeric":
            lines.append(f"         {r.headline}")
        if r.status in ("differs", "numeric", "modified"):
            lines += [f"         - {line}" for line in format_differences(r.differences)]
        if not r.ok or verbose:
            lines += [f"         note: {note}" for note in r.notes]
    if report.extra_entries:
        lines.append(
            f"note: {report.lock_file.name} has entries of variants no recipe defines "
            f"any more: {', '.join(report.extra_entries)} (a full `czbuild build` "
            "removes them)"
        )
    counts = report.counts()
    parts = [f"{n} {'match' if s == 'match' else s}" for s, n in counts.items()]
    lines.append(
        f"czbuild: {', '.join(parts) or 'nothing checked'} "
        f"({len(report.results)} variants, {report.lock_file.name})"
    )
    return lines


def _lock_failure(report: Any) -> LockMismatchError:
    bad = report.failures
    statuses = {r.status for r in bad}
    fix = []
    if statuses & {"missing", "stale"}:
        fix.append("run `czbuild build` (without --locked) to update czbuild.lock and commit it")
    if "modified" in statuses:
        fix.append("run `czbuild build` to replace the modified artifacts in the build folder")
    if "differs" in statuses:
        fix.append(
            "find the cause in the differences above (toolchain? SOURCE_DATE_EPOCH?), "
            "or accept the new bytes with `czbuild build`"
        )
    names = ", ".join(f"{r.variant} ({r.status})" for r in bad)
    return LockMismatchError(
        f"{len(bad)} of {len(report.results)} variants do not match "
        f"{report.lock_file.name}: {names}; " + "; ".join(fix)
    )


def render_lock_update(update: Any) -> str | None:
    """One line about a lock update, or None when nothing changed."""
    if not update.modified:
        return None
    parts = [
        f"{len(names)} {what}"
        for names, what in (
            (update.added, "added"),
            (update.changed, "changed"),
            (update.removed, "removed"),
        )
        if names
    ]
    changed = ", ".join([*update.added, *update.changed, *update.removed][:6])
    return f"czbuild: updated {update.path.name}: {', '.join(parts)} ({changed})"


# --- hooks for `czbuild build` --------------------------------------------------------------------


def update_lock_after_build(
    report: Any,
    variants: Sequence[Any],
    *,
    project_dir: Path,
    out_dir: Path,
    args: Sequence[str],
    wait: float = 60.0,
) -> None:
    """Refresh czbuild.lock after ``czbuild build`` (rules in :mod:`czbuild.release.updating`)."""
    from czbuild.builder.variants import split_arguments
    from czbuild.release.updating import update_lock_from_build

    names, overrides = split_arguments(args)
    if overrides:
        click.echo(
            "czbuild: czbuild.lock not updated: command-line overrides build variants "
            "the recipes do not define"
        )
        return
    full = not names and not report.summary.failed and report.exit_code == 0
    update = update_lock_from_build(project_dir, out_dir, variants, full=full, lock_timeout=wait)
    line = render_lock_update(update)
    if line:
        click.echo(line)


def build_locked(
    variants: Sequence[Any],
    options: Any,
    *,
    project_dir: Path,
    args: Sequence[str],
    verbose: bool = False,
) -> None:
    """``czbuild build --locked``: check in a scratch folder, then install the checked artifacts.

    Raises:
        LockMismatchError: Any variant is missing from, stale in, or differs from the lock
            (the build folder and the lock are left untouched).
        BuildError: A variant failed to build.
    """
    from czbuild.builder import build
    from czbuild.builder.variants import split_arguments
    from czbuild.release.adopt import adopt
    from czbuild.release.check import check_lock

    _no_overrides(args, "--locked")
    out_dir = Path(options.out_dir).absolute()
    click.echo(
        f"czbuild: --locked: rebuilding {len(variants)} variant(s) in a scratch folder "
        "and comparing with czbuild.lock"
    )
    scratch = make_scratch("locked")
    try:
        report = check_lock(
            variants,
            project_dir=project_dir,
            options=options,
            reference_dirs=[out_dir],
            scratch_dir=scratch,
            full=not split_arguments(args)[0],
            stream=sys.stdout,
        )
        for line in render_check(report, verbose=verbose):
            click.echo(line)
        if not report.ok:
            raise _lock_failure(report)
        remaining = adopt(scratch, out_dir, variants, lock_timeout=options.lock_timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if remaining:  # the build layer disagreed with a copied stamp: build those normally
        todo = [v for v in variants if v.name in remaining]
        result = build(todo, options, verbose=verbose)
        if not result.ok:
            raise BuildError(
                f"{len(result.summary.failed)} variants failed: "
                f"{', '.join(sorted(result.summary.failed))}"
            )
    click.echo(f"czbuild: {len(variants)} artifact(s) match czbuild.lock; installed in {out_dir}")


# --- commands -------------------------------------------------------------------------------------


_project_option = click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder holding recipes/ (default: the nearest one at or above the current "
    "directory).",
)
_jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Conversion workers running at once.",
)


def _options(out_dir: Path, jobs: int, in_process: bool, ctx: click.Context) -> Any:
    from czbuild.builder import BuildOptions
    from czbuild.cli import debug_enabled

    return BuildOptions(out_dir=out_dir, jobs=jobs, in_process=in_process, debug=debug_enabled(ctx))


def _verbose(ctx: click.Context) -> bool:
    from czbuild.cli.build_cmds import _verbosity

    return _verbosity(ctx) > 0


@click.command("check")
@click.argument("recipes", nargs=-1, metavar="[RECIPE ...]")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Build folder holding the previous artifacts, used for field-level "
    "explanations (default: <project>/build). Never written.",
)
@_project_option
@_jobs_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--in-process", is_flag=True, help="Convert in this process (debugging).")
@click.pass_context
def check_cmd(
    ctx: click.Context,
    recipes: tuple[str, ...],
    out: Path | None,
    project: Path | None,
    jobs: int,
    as_json: bool,
    in_process: bool,
) -> None:
    """Rebuild RECIPEs (default: all) from scratch and compare them with czbuild.lock.

    Every artifact is converted again in a temporary folder; any difference from the lock is
    explained member by member (metadata field, ONNX initializer, entry time ...). Exit code 1
    if a variant differs, is missing from the lock or is stale in it. Neither the build folder
    nor the lock is changed.
    """
    from czbuild.cli.build_cmds import _out_dir
    from czbuild.recipe.project import project_for
    from czbuild.release.check import check_lock

    names = _no_overrides(recipes, "check")
    project_dir = project_for(names, project)
    out_dir = _out_dir(out, project_dir)
    variants = _variants(names, project_dir)
    if not variants:
        click.echo("czbuild: no recipes to check")
        return
    scratch_options = _options(out_dir, jobs, in_process, ctx)
    report = check_lock(
        variants,
        project_dir=project_dir,
        options=scratch_options,
        reference_dirs=[out_dir],
        full=not names,
        stream=None if as_json else sys.stdout,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in render_check(report, verbose=_verbose(ctx)):
            click.echo(line)
    if not report.ok:
        if as_json:
            raise click.exceptions.Exit(1)
        raise _lock_failure(report)


@click.command("release")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Release folder (default: <project>/dist). Replaced as a whole; refused if "
    "it exists and is not a czbuild release.",
)
@_project_option
@_jobs_option
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
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Build folder with previous artifacts for explanations (default: "
    "<project>/build). Never written.",
)
@click.option("--json", "as_json", is_flag=True, help="Print release.json instead of a summary.")
@click.option("--in-process", is_flag=True, help="Convert in this process (debugging).")
@click.pass_context
def release_cmd(
    ctx: click.Context,
    out: Path | None,
    project: Path | None,
    jobs: int,
    allow_dirty: bool,
    allow_stale_lock: bool,
    no_verify: bool,
    build_dir: Path | None,
    as_json: bool,
    in_process: bool,
) -> None:
    """Build every recipe variant from scratch, check it against czbuild.lock, verify it, and
    write it to dist/ with SHA256SUMS and release.json.

    Refuses uncommitted release inputs (--allow-dirty) and a stale lock (--allow-stale-lock).
    """
    from czbuild.cli.build_cmds import _out_dir, _project_dir
    from czbuild.release.release import release

    project_dir = _project_dir(project)
    reference = _out_dir(build_dir, project_dir)
    dist = Path(out).absolute() if out else project_dir / "dist"
    variants = _variants([], project_dir)
    report = release(
        variants,
        project_dir=project_dir,
        dist_dir=dist,
        options=_options(reference, jobs, in_process, ctx),
        allow_dirty=allow_dirty,
        allow_stale_lock=allow_stale_lock,
        verify=not no_verify,
        reference_dirs=[reference],
        stream=None if as_json else sys.stdout,
    )
    if as_json:
        click.echo(json.dumps(report.manifest, indent=2, sort_keys=True))
        return
    for a in report.artifacts:
        click.echo(
            f"released  {a.path}  sha256 {a.sha256[:16]}  (lock: {a.lock_status}, "
            f"verify: {a.verify.status})"
        )
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
