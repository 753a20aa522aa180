"""``czbuild list``, ``czbuild show`` and ``czbuild schema``: thin adapters over czbuild.recipe.

None of these commands imports TensorFlow: the recipe layer never does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from czbuild.cli.options import project_dir, project_option
from czbuild.errors import RecipeError

__all__ = ["list_cmd", "schema_cmd", "show_cmd"]


def _variant_json(variant: Any) -> dict[str, Any]:
    inputs = []
    for path in variant.inputs:
        try:
            inputs.append(path.relative_to(variant.project_dir).as_posix())
        except ValueError:
            inputs.append(str(path))
    return {
        "name": variant.name,
        "recipe": variant.recipe,
        "digest": variant.digest,
        "output": variant.output.as_posix(),
        "sweep": dict(variant.sweep_values),
        "inputs": inputs,
        "notes": list(variant.notes),
        "spec": variant.spec.to_plain(),
    }


@click.command("list")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(project: Path | None, as_json: bool) -> None:
    """List the recipes and their variants (name, format, output path under the build folder).

    Every recipe is loaded and validated; invalid ones are listed with their error and make
    the exit code non-zero.
    """
    from czbuild.recipe import list_recipes, load_variants

    project = project_dir(project)
    names = list_recipes(project)
    rows: list[tuple[str, str, str, str]] = []
    records: list[dict[str, Any]] = []
    failed: list[RecipeError] = []
    for name in names:
        try:
            variants = load_variants([name], project_dir=project)
        except RecipeError as exc:
            failed.append(exc)
            rows.append((name, "-", "ERROR", str(exc)))
            records.append({"recipe": name, "error": str(exc)})
            continue
        for v in variants:
            kind = f"{v.spec.format} {v.spec.format_version}"
            rows.append((name, v.name, kind, v.output.as_posix()))
            records.append(
                {
                    "recipe": name,
                    "variant": v.name,
                    "format": v.spec.format,
                    "format_version": v.spec.format_version,
                    "output": v.output.as_posix(),
                    "digest": v.digest,
                }
            )
    if as_json:
        click.echo(json.dumps({"project": str(project), "variants": records}, indent=2))
    elif not names:
        click.echo(f"no recipes in {project / 'recipes'}")
    else:
        header = ("RECIPE", "VARIANT", "FORMAT", "OUTPUT (under the build folder)")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for row in [header, *rows]:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    if failed:
        raise click.exceptions.Exit(failed[0].exit_code)


@click.command("show")
@click.argument("recipe")
@click.argument("overrides", nargs=-1, metavar="[OVERRIDE ...]")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show_cmd(recipe: str, overrides: tuple[str, ...], project: Path | None, as_json: bool) -> None:
    """Print the fully resolved, validated spec and digest of each variant of RECIPE.

    RECIPE is a recipe name (nuclei) or a path to a recipe file. OVERRIDEs use Hydra syntax:
    tile=1024, metadata.classes=[bg,fg], +metadata.scaling=[1e-7,1e-7], target=zen-core-3.4;
    sweeps such as tile=256,512 or tile=range(256,1025,256) show one spec per variant.
    """
    import yaml

    from czbuild.builder.variants import split_arguments
    from czbuild.recipe import check_source_pin, load_variants

    more, values = split_arguments(overrides)
    names = [recipe, *more]
    variants = load_variants(names, values, project_dir=project_dir(project, names))
    for variant in variants:
        check_source_pin(variant)
    if as_json:
        click.echo(json.dumps({"variants": [_variant_json(v) for v in variants]}, indent=2))
        return
    for i, variant in enumerate(variants):
        if i:
            click.echo("---")
        click.echo(f"# variant: {variant.name}")
        click.echo(f"# digest: {variant.digest}")
        click.echo(f"# output: {variant.output.as_posix()}")
        for note in variant.notes:
            click.echo(f"# note: {note}")
        click.echo(
            yaml.safe_dump(
                variant.spec.to_plain(),
                sort_keys=False,
                default_flow_style=None,
                allow_unicode=True,
            ).rstrip()
        )


@click.command("schema")
@click.option(
    "--write",
    "write",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="Write the schema to PATH (a file, or a folder to hold recipe.schema.json) "
    "instead of printing it, and print the comment line for the project's recipes.",
)
@project_option
def schema_cmd(write: Path | None, project: Path | None) -> None:
    """Print the JSON Schema of a recipe file (for editor completion).

    With --write, keep a copy in a project (e.g. `czbuild schema --write recipe.schema.json`
    in the project folder) and point the recipes at it with the printed first line (relative
    to the recipes/ of --project, else of the project around PATH); run it again after
    upgrading czbuild.
    """
    from czbuild.recipe import render_json_schema

    text = render_json_schema()
    if write is None:
        click.echo(text, nl=False)
        return
    from czbuild.recipe.project import find_project_dir
    from czbuild.recipe.schema_file import schema_comment, write_schema

    target = write_schema(write, text)
    recipes = (project_dir(project) if project else find_project_dir(target.parent)) / "recipes"
    click.echo(f"wrote {target}")
    click.echo(f"first line for the recipes in {recipes}:")
    click.echo(schema_comment(target, recipes))
