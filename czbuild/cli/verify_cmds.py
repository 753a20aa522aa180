"""``czbuild verify``: check a finished .czann / .czmodel, optionally against its recipe.

A thin adapter: pick the recipe variant (if ``--recipe``), call
:func:`czbuild.verify.verify_artifact`, render the report as text or JSON, optionally write
the HTML report, exit 1 when a check failed. TensorFlow is only imported when the checks
need it (a payload to run, a source model to load).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click

from czbuild.errors import RecipeError

_MARK = {"passed": "ok  ", "failed": "FAIL", "warning": "warn", "skipped": "skip"}


def render_text(report: Any) -> str:
    """The report as aligned text lines: one header, one line per check."""
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    kind = f"{(report.family or '?').upper()} {report.version or '?'}"
    verdict = "OK" if report.ok else "FAILED"
    lines = [f"{report.path}: {kind}: {verdict} ({counts})"]
    name_width = max((len(c.name) for c in report.checks), default=0)
    figures = ["" if c.figure is None else str(c.figure) for c in report.checks]
    fig_width = min(max((len(f) for f in figures), default=0), 28)
    for check, figure in zip(report.checks, figures):
        lines.append(
            f"  {_MARK[check.status]}  {check.name.ljust(name_width)}  "
            f"{figure.ljust(fig_width)}  {check.message}"
        )
    return "\n".join(lines)


def select_variant(recipe: str, artifact: Path, project_dir: Path | None) -> Any:
    """The recipe variant ``recipe`` names for ``artifact``.

    ``recipe`` is a recipe name or file (``nuclei``, ``recipes/nuclei.yaml``) or a variant name
    (``nuclei@tile=512``). A recipe with several variants is narrowed down by the artifact's
    path (``build/<recipe>/<variant-dir>/<name>``).

    Raises:
        RecipeError: Unknown recipe or variant, or several variants fit.
    """
    from czbuild.recipe import load_variants
    from czbuild.recipe.project import project_for

    base, _, _ = recipe.partition("@")
    project = project_for([base], project_dir)
    variants = load_variants([base], project_dir=project)
    if "@" in recipe:
        named = [v for v in variants if v.name == recipe]
        if not named:
            raise RecipeError(
                f"no variant {recipe!r}; variants: " + ", ".join(v.name for v in variants),
                file=base,
            )
        return named[0]
    if len(variants) == 1:
        return variants[0]
    tail = artifact.absolute().as_posix()
    fitting = [v for v in variants if tail.endswith("/" + v.output.as_posix())]
    if len(fitting) == 1:
        return fitting[0]
    raise RecipeError(
        f"recipe {base!r} has {len(variants)} variants; name one with --recipe "
        + " or --recipe ".join(v.name for v in variants),
        file=base,
    )


def report_stem(artifact: Path, variant: Any = None) -> str:
    """File name stem of the ``--report`` files of ``artifact``, distinct per artifact.

    With a recipe variant: the artifact's path relative to the build folder with ``/`` as
    ``__`` (``nuclei__tile=512__nuclei.czann``); variants of one recipe share the file name but
    not that path. Without: the file name and a short hash of the absolute path
    (``nuclei.czann-1a2b3c4d``).
    """
    if variant is not None:
        return "__".join(Path(variant.output).parts)
    digest = hashlib.sha256(str(artifact.resolve()).encode("utf-8")).hexdigest()[:8]
    return f"{artifact.name}-{digest}"


@click.command("verify")
@click.argument("artifact", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--recipe",
    "recipe",
    metavar="RECIPE_OR_VARIANT",
    help="Check fidelity and tiling against this recipe (name, file or variant "
    "such as nuclei@tile=512).",
)
@click.option(
    "--project",
    "project_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Project folder holding recipes/ (default: found from the current folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write an HTML report with pictures into this folder (files named "
    "after the artifact's path in the build folder, or its name and a hash).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Sets both tolerances below (default: the recipe's, else 1e-5).",
)
@click.option(
    "--fidelity-tolerance",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Max abs difference for probabilities and fidelity (default: the recipe's "
    "verify.fidelity_tolerance, else 1e-5).",
)
@click.option(
    "--seam-tolerance",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Max abs seam error of tiled inference (default: the recipe's "
    "verify.seam_tolerance, else 1e-5).",
)
@click.option(
    "--seed", type=int, default=None, help="Seed of test inputs (default: the recipe's, else 0)."
)
@click.option("--no-tiling", "no_tiling", is_flag=True, help="Skip the tiling simulation.")
@click.option(
    "--strict", is_flag=True, help="Fail (not warn) on layout and reproducibility deviations."
)
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    artifact: Path,
    recipe: str | None,
    project_dir: Path | None,
    as_json: bool,
    report_dir: Path | None,
    tolerance: float | None,
    fidelity_tolerance: float | None,
    seam_tolerance: float | None,
    seed: int | None,
    no_tiling: bool,
    strict: bool,
) -> None:
    """Verify a .czann / .czmodel ARTIFACT: container, payload, semantics, fidelity, tiling.

    Exits with 1 when any check failed. Without --recipe, fidelity and the tiling
    simulation are skipped (the receptive field is still measured on the packaged model).
    With --recipe in a project whose czbuild.lock records the variant, the artifact must be
    the very bytes the build recorded (payload.digest): a change below the tolerance fails.

    With --recipe the variant's verify: settings apply, as in the build (the overlap
    analysis, advice that never fails a check, always runs); options override them.
    """
    from czbuild.release.locked import CHECK, UNCHECKED, lock_digest
    from czbuild.verify import verify_artifact, write_html_report
    from czbuild.verify.api import recipe_verify_settings

    variant = select_variant(recipe, artifact, project_dir) if recipe else None
    report = verify_artifact(
        artifact,
        settings=recipe_verify_settings(variant) if variant is not None else None,
        recipe_variant=variant,
        tolerance=tolerance,
        fidelity_tolerance=fidelity_tolerance,
        seam_tolerance=seam_tolerance,
        seed=seed,
        tiling=False if no_tiling else None,
        strict=strict,
    )
    if report.family is not None:  # a readable artifact: does it carry the locked bytes?
        if variant is None:
            report.add(CHECK, "skipped", None, UNCHECKED)
        else:
            found = lock_digest(artifact, variant.name, variant.project_dir)
            report.add(CHECK, found.status, found.figure, found.message)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render_text(report))
    if report_dir is not None:
        written = write_html_report(report, report_dir, report_stem(artifact, variant))
        click.echo(f"report: {written[0]}", err=as_json)
    if not report.ok:
        ctx.exit(1)
