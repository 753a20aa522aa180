"""What the runtime of a target ZEN can execute: the payload compatibility rules.

Two tables, one owner each:

* legacy CZMODEL 3.0.0 payloads (zipped SavedModel) run on TensorFlow 2.0.0: the op table
  ``data/tf2_0_ops.json`` (op name -> attr names, extracted from the official wheel by
  ``tools/tf2_0_ops.py``) says which ops and attrs that runtime knows;
* ONNX payloads run on the ONNX Runtime of the target: the highest opset and IR version per
  format version are :data:`czbuild.formats.vocab.MAX_OPSET` / ``MAX_IR_VERSION``.

Pure data and rules, no TensorFlow and no ONNX: callers (the SavedModel exporter and the
verifier) parse the graphs and pass plain node descriptions in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

from czbuild.formats import vocab

#: The TensorFlow release legacy 3.0.0 payloads must load in (format reference §1).
TF_RUNTIME_VERSION = "2.0.0"
_TF_TABLE = "tf2_0_ops.json"
#: How many node locations a problem lists before it says "and N more".
_SHOWN = 3

__all__ = [
    "TF_RUNTIME_VERSION",
    "TfNode",
    "onnx_runtime_problems",
    "tf_node_problems",
    "tf_ops",
]


@dataclass(frozen=True)
class TfNode:
    """One TensorFlow graph node as the compatibility rule sees it.

    Attributes:
        where: Where the node is, for messages: ``"graph"`` or ``"function <name>"``.
        name: The node name.
        op: The op type.
        attrs: The attr names set on the node.
    """

    where: str
    name: str
    op: str
    attrs: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def tf_ops() -> Mapping[str, frozenset[str]]:
    """The TensorFlow 2.0.0 op table: op name -> the attr names its definition has."""
    text = (
        resources.files("czbuild.formats").joinpath("data").joinpath(_TF_TABLE).read_text("utf-8")
    )
    return {name: frozenset(attrs) for name, attrs in json.loads(text)["ops"].items()}


def tf_node_problems(nodes: Iterable[TfNode]) -> list[str]:
    """Why TensorFlow 2.0.0 would refuse a graph with these nodes; empty when it would not.

    A node fails when its op is not in the table ("Op type not registered") or it sets an
    attr the op's 2.0.0 definition lacks ("NodeDef mentions attr ... not in Op"). Attrs whose
    name starts with ``_`` are internal annotations every TensorFlow ignores.

    Returns:
        One sentence per unknown op and per (op, unknown attr), naming up to three nodes.
    """
    table = tf_ops()
    unknown_ops: dict[str, list[str]] = {}
    unknown_attrs: dict[tuple[str, str], list[str]] = {}
    for node in nodes:
        label = node.name if node.where == "graph" else f"{node.name} in {node.where}"
        known = table.get(node.op)
        if known is None:
            unknown_ops.setdefault(node.op, []).append(label)
            continue
        for attr in node.attrs:
            if not attr.startswith("_") and attr not in known:
                unknown_attrs.setdefault((node.op, attr), []).append(label)
    problems = [
        f"op {op} is not a TensorFlow {TF_RUNTIME_VERSION} op (at {_places(at)})"
        for op, at in sorted(unknown_ops.items())
    ]
    problems += [
        f"op {op} has attr {attr!r}, which TensorFlow {TF_RUNTIME_VERSION}'s {op} lacks "
        f"(at {_places(at)})"
        for (op, attr), at in sorted(unknown_attrs.items())
    ]
    return problems


def onnx_runtime_problems(version: str, opset: int | None, ir_version: int) -> list[str]:
    """Why the ONNX Runtime of a format ``version``'s targets would not read the model.

    Args:
        version: The artifact's format version (``"2.1.0"``, ``"3.1.0"``, ...).
        opset: The default-domain opset the model imports (None: none).
        ir_version: The model's ``ir_version``.

    Returns:
        Problems with the opset (outside ``vocab.MIN_OPSET..vocab.MAX_OPSET[version]``) and
        the IR version (above ``vocab.MAX_IR_VERSION[version]``); empty when both fit.

    Raises:
        ValueError: ``version`` has no ONNX payload (3.0.0) or is unknown.
    """
    max_opset = vocab.MAX_OPSET.get(version)
    if max_opset is None:
        raise ValueError(f"format version {version!r} has no ONNX payload")
    max_ir = vocab.MAX_IR_VERSION[version]
    runtime = vocab.ONNX_RUNTIME[version]
    problems = []
    if opset is None:
        problems.append(f"the model imports no ai.onnx opset, which {runtime} needs")
    elif not vocab.MIN_OPSET <= opset <= max_opset:
        problems.append(
            f"opset {opset} outside {vocab.MIN_OPSET}..{max_opset}, what {runtime} runs"
        )
    if ir_version > max_ir:
        problems.append(f"ir_version {ir_version} above {max_ir}, the highest {runtime} reads")
    return problems


def _places(labels: list[str]) -> str:
    shown = ", ".join(labels[:_SHOWN])
    more = len(labels) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")
