"""The first recipe ``czbuild init --from MODEL`` writes: YAML text with every guess commented.

:func:`recipe_text` turns :class:`~czbuild.scaffold.probe.ModelFacts` into a readable recipe.
Every value inferred from the model carries a ``# guessed: ...`` comment saying from what;
the one question czbuild cannot answer for a sigmoid head (which class the sigmoid scores) is
left as a commented-out ``positive:`` line under ``sigmoid_to_softmax_scores``, which the
recipe schema requires, so ``czbuild build`` refuses the recipe until it is answered.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from czbuild.formats import vocab
from czbuild.scaffold.probe import ModelFacts

__all__ = [
    "DEFAULT_TARGET",
    "SIGMOID_CLASSES",
    "TILE_RANGE",
    "recipe_name",
    "recipe_text",
    "suggest_tile",
    "valid_tiles",
]

#: The target config the first recipe uses (the newest ZEN release czbuild knows).
DEFAULT_TARGET = "zen-blue-3.13"
#: The tile size suggested for a model that runs at any multiple of its factor (px), and
#: the largest one suggested unless the overlap needs more.
TILE_RANGE = (256, 1024)
#: The smallest 3D tile ``[z, h, w]`` suggested; each side also exceeds twice the overlap
#: and is rounded up to a multiple of 8 and of the down-sampling factor.
TILE_3D = (16, 64, 64)
#: Tiles listed as examples in the recipe's comment.
EXAMPLE_TILES = (64, 128, 192, 256, 384, 512, 768, 1024)
#: Class names of a 1-channel sigmoid head (the ``positive:`` question names one of them).
SIGMOID_CLASSES = ("Background", "Foreground")
_COLUMN = 35  # comments after values start here
_WIDTH = 92
_HEAD_WORDS = {"softmax": "a softmax head", "sigmoid": "a sigmoid head", "linear": "a linear head"}


def recipe_name(stem: str) -> str:
    """A recipe name (letters, digits, ``_ . -``) from a model file's stem."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-")
    return name or "model"


def suggest_tile(factor: int, overlap: int) -> int:
    """A square tile: a multiple of ``factor``, at least 4 × the overlap (so little of each
    tile is discarded), between :data:`TILE_RANGE` unless the overlap needs more."""
    low, high = TILE_RANGE
    tile = _round_up(max(low, 4 * overlap), factor)
    if tile > high:
        tile = max(_round_up(high, factor), _round_up(overlap + 1, factor))
    return tile


def valid_tiles(factor: int, overlap: int) -> list[int]:
    """Example tiles: multiples of ``factor`` larger than the overlap."""
    return [t for t in EXAMPLE_TILES if t % factor == 0 and t > overlap]


def _round_up(value: int, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _scalar(value: object) -> str:
    """A YAML scalar (quoted only when needed)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def _flow(values: Sequence[object]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


@dataclass
class _Lines:
    lines: list[str]

    def add(self, text: str, comment: str | None = None) -> None:
        if comment:
            text = f"{text.ljust(_COLUMN - 1)} # {comment}"
        self.lines.append(text)

    def comment(self, text: str, indent: int = 0) -> None:
        """``text`` as comment lines, wrapped at :data:`_WIDTH` columns."""
        prefix = " " * indent + "# "
        self.lines += textwrap.wrap(
            text, _WIDTH, initial_indent=prefix, subsequent_indent=prefix, break_on_hyphens=False
        )


def _float(value: float) -> str:
    return f"{value:.3g}"


def _head_type(facts: ModelFacts) -> tuple[str, list[str] | None, str]:
    """``(metadata.type, classes or None, why)``."""
    n = facts.output_channels
    lo, hi = (_float(v) for v in facts.output_range)
    if facts.head == "softmax":
        kind = "SingleClass" if n == 2 else "MultiClass"
        return (
            f"{kind}SemanticSegmentation",
            [f"class_{i}" for i in range(n)],
            f"the {n} output channels are a softmax (in [0, 1], summing to 1 on every probe pixel)",
        )
    if facts.head == "sigmoid" and n == 1:
        return (
            "SingleClassSemanticSegmentation",
            list(SIGMOID_CLASSES),
            f"one output channel in [0, 1] (outputs [{lo}, {hi}] on probes, also for inputs "
            "far outside [0, 1]): a sigmoid. A Regression model with a bounded output looks "
            "the same: then write type: Regression and drop classes and postprocessing",
        )
    if facts.head == "sigmoid":
        kind = "SingleClass" if n == 2 else "MultiClass"
        return (
            f"{kind}SemanticSegmentation",
            [f"class_{i}" for i in range(n)],
            f"{n} output channels in [0, 1] that do not sum to 1 (independent sigmoids?); "
            "ZEN labels each pixel with the channel of the highest score",
        )
    return (
        "Regression",
        None,
        f"an unbounded (linear) head: outputs [{lo}, {hi}] on probe images",
    )


def recipe_text(
    facts: ModelFacts,
    *,
    name: str,
    model_ref: str,
    schema_line: str | None = None,
    version: str = "",
) -> str:
    """The recipe YAML for ``facts``.

    Args:
        facts: What :func:`~czbuild.scaffold.probe.probe_model` measured.
        name: The recipe name (its file is ``recipes/<name>.yaml``).
        model_ref: The model's path relative to the recipe (``../models/unet.keras``).
        schema_line: The ``# yaml-language-server: $schema=...`` first line, if any.
        version: czbuild's version, for the header.

    Returns:
        The text, ending in a newline.
    """
    out = _Lines([])
    if schema_line:
        out.lines.append(schema_line)
    tool = f"czbuild {version}".strip()
    out.comment(
        f"First recipe for {model_ref.removeprefix('../')}, written by `czbuild init --from` "
        f'({tool}). Lines marked "guessed" were inferred by running the model on seeded '
        "images: check each one before you ship the artifact (docs/recipes.md describes "
        "every key)."
    )
    dims = ", ".join("?" if d is None else str(d) for d in facts.spatial)
    layout = ""
    if facts.family == "onnx":
        layout = ", channels-first" if facts.channels_first else ", channels-last"
    pixel_types = [
        t
        for t, n in vocab.PIXEL_TYPE_CHANNELS.items()
        if n == facts.input_channels and t not in vocab.COMPLEX_PIXEL_TYPES
    ]
    takes = (
        f"ZEN images of pixel type {', '.join(pixel_types)}"
        if pixel_types
        else f"no single ZEN pixel type carries {facts.input_channels} channels"
    )
    out.comment(
        f"The model ({facts.family}{layout}): input [{dims}] x {facts.input_channels} channel(s) "
        f"({takes}), output {facts.output_channels} channel(s)."
    )
    out.lines.append("defaults:")
    out.add(f"  - /target: {DEFAULT_TARGET}", "the ZEN release to open it in (configs/target/)")
    out.lines.append("  - _self_")
    out.lines.append("")
    out.add(f"name: {_scalar(name)}")
    out.lines.append("model:")
    if facts.family == "onnx":
        out.add(f"  onnx: {_scalar(model_ref)}")
        flag = "true" if facts.channels_first else "false"
        if facts.layout_certain:
            why = "the input's channel axis is 1" if facts.channels_first else None
            out.add(f"  channels_first: {flag}", why)
        else:
            out.add(f"  channels_first: {flag}", "guessed: see below")
            out.comment(
                "every input dim is fixed: the smaller of axis 1 and the last axis is taken "
                "for the channels",
                2,
            )
    else:
        out.add(f"  path: {_scalar(model_ref)}")
    out.lines.append("format: czann")
    overlap = facts.overlap or (0,) * len(facts.spatial)
    big = max(overlap)
    capped = False
    rank = len(facts.spatial)
    if facts.factor is None:
        assert facts.fixed is not None
        fixed = facts.fixed
        why = "the model's fixed input size: the only one it runs at"
        if rank == 2 and fixed[0] == fixed[1]:
            out.add(f"tile: {fixed[0]}", why)
        else:
            out.add(f"spatial_dims: {_flow(list(fixed))}", why)
        if any(o >= d for o, d in zip(overlap, fixed)):  # MinOverlap must stay below the tile
            overlap = tuple(min(o, (d - 1) - (d - 1) % 2) for o, d in zip(overlap, fixed))
            capped = True
    elif rank == 3:
        tile_3d = [
            _round_up(max(d, 2 * o + facts.factor), max(facts.factor, 8))
            for d, o in zip(TILE_3D, facts.overlap or (0, 0, 0))
        ]
        out.add(
            f"spatial_dims: {_flow(tile_3d)}",
            f"guessed: [z, h, w], multiples of the down-sampling factor {facts.factor}",
        )
    else:
        tile = suggest_tile(facts.factor, big)
        if facts.factor == 1:
            out.add(f"tile: {tile}", "guessed: the model runs at any size (no down-sampling found)")
        else:
            out.add(
                f"tile: {tile}", f"guessed: a multiple of the down-sampling factor {facts.factor}"
            )
            tiles = ", ".join(str(t) for t in valid_tiles(facts.factor, big))
            out.comment(
                f"valid tiles: multiples of {facts.factor} larger than the overlap"
                + (f", e.g. {tiles}" if tiles else "")
            )
    if facts.factor is not None and facts.fixed is not None:
        out.comment(f"(the model was saved for {list(facts.fixed)}; czbuild rebuilds it there)")
    out.add("preprocessing: []", "guessed: none")
    out.comment(
        "ZEN feeds CZANN models pixel values scaled to [0, 1]; add the normalisation the model "
        "was trained with (configs/preprocessing/, e.g. - per_image_standardization)."
    )
    if facts.input_channels == 3:
        out.comment("ZEN feeds colour images as BGR: a model trained on RGB needs - rgb_to_bgr.")
    model_type, classes, why = _head_type(facts)
    if facts.head == "linear":
        lo, hi = (_float(v) for v in facts.output_range)
        out.lines.append("postprocessing:")
        out.comment(
            "guessed: ZEN expects a Regression output in [0, 1] and the head is linear "
            f"(outputs [{lo}, {hi}] on probe images): clip to [0, 1]. If the model's outputs "
            "have another range, rescale first (scale_range) or use - sigmoid instead.",
            2,
        )
        out.lines.append("  - {op: clip, min: 0, max: 1}")
    elif facts.head == "sigmoid" and facts.output_channels == 1:
        a, b = SIGMOID_CLASSES
        out.lines.append("postprocessing:")
        out.comment(
            "QUESTION (czbuild build refuses this recipe until it is answered): which class "
            "does the model's single sigmoid channel p score? Uncomment `positive:` below and "
            "name it (one of metadata.classes):",
            2,
        )
        out.lines.append(f"  #   positive: {b}  ->  channels [{a}, {b}] = [1 - p, p]")
        out.lines.append(f"  #   positive: {a}  ->  channels [{a}, {b}] = [p, 1 - p]")
        out.lines.append("  - op: sigmoid_to_softmax_scores")
        out.lines.append(f"    # positive: {b}")
    out.lines.append("metadata:")
    out.add(f"  type: {model_type}", f"guessed: {_HEAD_WORDS[facts.head]}")
    out.comment(why, 2)
    if classes is not None:
        out.add(
            f"  classes: {_flow(classes)}",
            "guessed: one name per output channel, in order: rename them",
        )
    if facts.radius is not None:
        radius = _flow(list(facts.radius))
        if facts.radius_bounded:
            note = f"guessed: 2 x the receptive radius {radius} px"
        else:
            note = f"guessed: AT LEAST 2 x the receptive radius {radius} px"
        out.add(f"  min_overlap: {_flow(list(overlap))}", note)
        text = "the receptive radius was measured by changing single pixels"
        if not facts.radius_bounded:
            text += (
                f" and reached the border of the largest ({facts.probe_side}-px) probe: global "
                "context? ZEN's tiles may show seams"
            )
        if (facts.factor or 1) > 2:
            text += (
                f"; rounded up to a multiple of the down-sampling factor {facts.factor}, so the "
                "tile stride stays on the pooling grid"
            )
        if capped:
            text += "; capped below the fixed tile size, so tiles will show seams"
        out.comment(text + ". czbuild build's tiling checks (tiling.seams) confirm it.", 2)
    return "\n".join(out.lines) + "\n"
