"""``czbuild init [DIR] [--from MODEL]``: a new project, with a first recipe for a model.

A thin adapter over :func:`czbuild.scaffold.project.init_project`. TensorFlow (or
onnxruntime) is loaded only when a model is given, to probe it.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["init_cmd"]


@click.command("init")
@click.argument(
    "directory",
    metavar="[DIR]",
    required=False,
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--from",
    "model",
    metavar="MODEL",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A trained model (.keras, .h5, SavedModel folder or .onnx): copied to models/ and "
    "described by a first recipe, every inferred value marked as guessed.",
)
@click.option("--name", default=None, help="Recipe name (default: from the model's file name).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init_cmd(directory: Path, model: Path | None, name: str | None, force: bool) -> None:
    """Create a czbuild project in DIR (default: the current directory).

    Writes recipes/, configs/ (copies of the bundled config groups), models/, .gitignore,
    README.md and recipe.schema.json. With --from MODEL, the model is run on seeded images to
    infer its input and output channels, head (softmax, sigmoid, linear), down-sampling
    factor and receptive field, and recipes/<name>.yaml is written from them. Nothing is
    written when a file exists (unless --force) or the model cannot be read.
    """
    from czbuild.scaffold.project import init_project

    if model is not None:
        click.echo(f"probing {model} ...", err=True)
    result = init_project(directory, model=model, name=name, force=force)
    if result.written:
        click.echo(f"created project {result.root} ({len(result.written)} files written)")
    else:
        click.echo(f"project {result.root} is complete: every file is there, nothing written")
    if result.recipe is not None and result.facts is not None:
        facts = result.facts
        click.echo(
            f"wrote recipes/{result.recipe}.yaml: {facts.head} head, "
            f"{facts.input_channels} -> {facts.output_channels} channels, "
            f"down-sampling {facts.factor or 'fixed size'}, overlap "
            f"{list(facts.overlap) if facts.overlap else 'not measured'}"
        )
        if facts.head == "sigmoid" and facts.output_channels == 1:
            click.echo(
                f"answer the positive: question in recipes/{result.recipe}.yaml before "
                "czbuild build (which class the sigmoid scores)"
            )
        click.echo("check every value marked 'guessed', then: czbuild build")
