"""``czbuild predict ARTIFACT IMAGE``: what ZEN will show for this model on this image.

A thin adapter over :func:`czbuild.predict.predict_image`: parses the options, shows the
tiles done / total on stderr (a live line on a terminal, a line per tenth otherwise) and
prints what was written with the share of each class (or the value range).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


class _TileProgress:
    """``predicting: 12/144 tiles``: redrawn on a terminal, every tenth of the work otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.shown = -1
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.tty:
            now = time.monotonic()
            if done == total or now - self.last > 0.2:
                self.last = now
                end = "\n" if done == total else ""
                click.echo(f"\rpredicting: {done}/{total} tiles", err=True, nl=False)
                if end:
                    click.echo("", err=True)
            return
        tenth = done * 10 // max(total, 1)
        if tenth != self.shown and (total >= 20 or done == total):
            self.shown = tenth
            click.echo(f"predicting: {done}/{total} tiles", err=True)


@click.command("predict")
@click.argument("artifact", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Output OME-TIFF (default: beside the image, <name>.labels.ome.tif; regression: "
    "<name>.prediction.ome.tif).",
)
@click.option(
    "--scene",
    type=click.IntRange(min=0),
    default=None,
    help="CZI scene index (default: the first); TIFF: series index (default 0).",
)
@click.option(
    "--channel",
    "channels",
    type=click.IntRange(min=0),
    multiple=True,
    help="Image channel to feed, in model order (repeat for several; default: all).",
)
@click.option(
    "--input-range",
    default=None,
    metavar="BITS|LOW,HIGH",
    help="CZANN models get values in [0, 1]: integer pixels are divided by their type's "
    "maximum (255 / 65535) unless you give the camera's bit depth (12) or a LOW,HIGH range "
    "here (ZEN's exact mapping is unconfirmed).",
)
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write the class probabilities (<out>.probabilities.ome.tif, one sample per class).",
)
@click.option(
    "--preview",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write a PNG: the (middle) plane subsampled to 1024 px with the classes over it.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def predict_cmd(
    artifact: Path,
    image: Path,
    out: Path | None,
    scene: int | None,
    channels: tuple[int, ...],
    input_range: str | None,
    probabilities: bool,
    preview: Path | None,
    quiet: bool,
) -> None:
    """Run ARTIFACT on IMAGE (.czi, .tif / .ome.tif) with ZEN's tiling; write an OME-TIFF.

    Tiles are the model's input size with its MinOverlap (legacy: 2 x BorderSize); each
    tile's centre is kept. Segmentation writes class indices (0 = first class), regression
    the values. Memory stays bounded for images larger than RAM.
    """
    from czbuild.predict import parse_input_range, predict_image

    bounds = parse_input_range(input_range) if input_range is not None else None
    result = predict_image(
        artifact,
        image,
        out,
        scene=scene,
        channels=channels or None,
        input_range=bounds,
        probabilities=probabilities,
        preview=preview,
        on_tiles=_TileProgress(quiet),
    )
    z, h, w, _ = result.shape
    size = f"{w}x{h}" + (f"x{z}" if z > 1 else "")
    click.echo(f"{result.out}: {result.plan.kind} of {image} ({size}, {result.tiles} tiles)")
    for name, share in result.fractions.items():
        click.echo(f"  {name}: {share * 100:.2f} %")
    if result.value_range is not None:
        click.echo(f"  values: {result.value_range[0]:.4g} .. {result.value_range[1]:.4g}")
    if result.probabilities is not None:
        click.echo(f"{result.probabilities}: class probabilities")
    if result.preview is not None:
        click.echo(f"{result.preview}: preview")
