"""``czbuild convert SPEC.json OUT_DIR [NAME]``: one conversion from a JSON spec (format §4).

A thin adapter over :func:`czbuild.convert.convert_from_json_spec`. TensorFlow is imported
only when the command runs, so ``czbuild --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from czbuild.formats import vocab


@click.command("convert")
@click.argument("spec", metavar="SPEC.json", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", metavar="OUT_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name", metavar="[NAME]", required=False)
@click.option(
    "--format-version",
    type=click.Choice(vocab.ALL_VERSIONS),
    default=None,
    help="Target format version (default: 2.1.0 for a CZANN spec, 3.1.0 for a legacy spec; "
    "3.0.0 writes a zipped SavedModel).",
)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: per format version).")
@click.option(
    "--spatial-dims",
    nargs=2,
    type=int,
    default=None,
    metavar="H W",
    help="Rebuild the model at this tile size (needed when its height/width are undefined).",
)
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=None,
    metavar="Z",
    help="With --spatial-dims, the tile's depth for a 3D model (a Z x H x W tile; CZANN >= 2.0.0).",
)
def convert_cmd(
    spec: Path,
    out_dir: Path,
    name: str | None,
    format_version: str | None,
    opset: int | None,
    spatial_dims: tuple[int, int] | None,
    depth: int | None,
) -> None:
    """Convert the model described by SPEC.json into OUT_DIR/NAME.czann or .czmodel.

    NAME defaults to the spec file's name without extension. Relative paths inside the spec
    are relative to the spec file's folder.
    """
    from czbuild.convert import convert_from_json_spec

    dims: tuple[int, ...] | None = tuple(spatial_dims) if spatial_dims else None
    if depth is not None:
        if dims is None:
            raise click.UsageError("--depth Z needs --spatial-dims H W (a 3D tile is Z x H x W)")
        dims = (depth, *dims)
    path = convert_from_json_spec(
        spec,
        out_dir,
        name,
        format_version=format_version,
        opset=opset,
        spatial_dims=dims,
    )
    click.echo(str(path))
