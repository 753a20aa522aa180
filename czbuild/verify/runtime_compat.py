"""The ``payload.runtime_compat`` check: would the target ZEN's own runtime load the payload?

Today's TensorFlow and onnxruntime load far more than the runtimes inside old ZEN releases,
so ``payload.model`` passing says little about ZEN. This check compares the payload with the
tables of :mod:`czbuild.formats.runtime`:

* legacy 3.0.0 (zipped SavedModel, TensorFlow 2.0.0): every node of every meta graph and of
  every library function uses an op TensorFlow 2.0.0 has, and only attrs that op's 2.0.0
  definition has (attrs starting with ``_`` aside); calls of library functions are fine;
* ONNX (CZANN, legacy 3.1.0): the default-domain opset and the IR version are within what
  the target's ONNX Runtime reads (``vocab.MAX_OPSET`` / ``vocab.MAX_IR_VERSION``), and every
  standard-domain op is defined at that opset.

A SavedModel payload of CZANN 1.x has no known runtime table: skipped. A payload that cannot
be parsed is skipped here (``payload.model`` reports why).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from czbuild.formats import runtime, vocab
from czbuild.formats.container import SAVEDMODEL_LIMITS, read_container
from czbuild.verify.info import ModelInfo
from czbuild.verify.report import FAILED, PASSED, SKIPPED, VerifyReport

NAME = "payload.runtime_compat"
_ZIP_MAGIC = b"PK\x03\x04"
_STANDARD_DOMAINS = ("", "ai.onnx")


def check_runtime_compat(
    data: bytes, info: ModelInfo, report: VerifyReport, *, max_bytes: int
) -> None:
    """Add the ``payload.runtime_compat`` check for the payload ``data``.

    Args:
        data: The ``model.model`` / ``<id>.model`` bytes.
        info: Facts from the metadata (the version picks the runtime).
        report: Receives the check.
        max_bytes: Bound for unpacking a nested SavedModel zip.
    """
    if data.startswith(_ZIP_MAGIC):
        if info.version != "3.0.0":
            report.add(
                NAME,
                SKIPPED,
                None,
                f"no runtime table for a SavedModel payload in {info.family.upper()} "
                f"{info.version} (only legacy 3.0.0 has one: TensorFlow "
                f"{runtime.TF_RUNTIME_VERSION})",
            )
            return
        _check_savedmodel(data, report, max_bytes=max_bytes)
    elif vocab.MAX_OPSET.get(info.version) is not None:
        _check_onnx(data, info, report)
    else:
        report.add(NAME, SKIPPED, None, f"{info.version} needs a SavedModel payload")


# --- SavedModel / TensorFlow 2.0.0 -----------------------------------------------------------


def savedmodel_nodes(saved_model_pb: bytes) -> list[runtime.TfNode]:
    """Every node of a ``saved_model.pb``, as the compatibility rule sees it.

    Nodes of each meta graph's graph and of every function in its library; a node whose op
    names a library function (a direct function call) is left out: it is not a registered op.

    Raises:
        google.protobuf.message.DecodeError: the bytes are not a ``SavedModel``.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(saved_model_pb)
    nodes: list[runtime.TfNode] = []
    for meta in saved.meta_graphs:
        graph = meta.graph_def
        functions = {f.signature.name for f in graph.library.function}

        def add(where: str, node_defs: Any, functions: set[str] = functions) -> None:
            for node in node_defs:
                if node.op not in functions:
                    attrs = tuple(sorted(node.attr))
                    nodes.append(runtime.TfNode(where, node.name, node.op, attrs))

        add("graph", graph.node)
        for function in graph.library.function:
            add(f"function {function.signature.name}", function.node_def)
    return nodes


def _check_savedmodel(data: bytes, report: VerifyReport, *, max_bytes: int) -> None:
    try:
        nested = read_container(
            data, limits=replace(SAVEDMODEL_LIMITS, max_bytes=max_bytes), label="SavedModel payload"
        )
        if nested.problems or nested.name_problems or "saved_model.pb" not in nested.names():
            raise ValueError("no readable saved_model.pb")
        pb = nested.read("saved_model.pb")
        nodes = savedmodel_nodes(pb)
    except Exception as exc:
        report.add(NAME, SKIPPED, None, f"the SavedModel cannot be read ({exc}); see payload.model")
        return
    problems = runtime.tf_node_problems(nodes)
    target = f"TensorFlow {runtime.TF_RUNTIME_VERSION} (ZEN Blue 3.2 / Core 3.1)"
    details = {"runtime": target, "nodes": len(nodes), "ops": sorted({n.op for n in nodes})}
    if problems:
        report.add(
            NAME,
            FAILED,
            f"{len(problems)} incompatibilit{'y' if len(problems) == 1 else 'ies'}",
            f"{target} would refuse the graph: " + "; ".join(problems),
            problems=problems,
            **details,
        )
        return
    report.add(
        NAME,
        PASSED,
        f"TF {runtime.TF_RUNTIME_VERSION}: {len(nodes)} nodes",
        f"every node uses an op and attrs {target} knows",
        **details,
    )


# --- ONNX ------------------------------------------------------------------------------------


def _check_onnx(data: bytes, info: ModelInfo, report: VerifyReport) -> None:
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:
        report.add(NAME, SKIPPED, None, f"the ONNX model cannot be read ({exc}); see payload.model")
        return
    imports = {o.domain: o.version for o in model.opset_import}
    standard = [v for d, v in imports.items() if d in _STANDARD_DOMAINS]
    opset = max(standard) if standard else None
    problems = runtime.onnx_runtime_problems(info.version, opset, model.ir_version)
    if opset is not None:
        problems += _ops_missing_at(model, opset)
    target = vocab.ONNX_RUNTIME[info.version]
    figure = f"opset {opset}, IR {model.ir_version}"
    details = {
        "runtime": target,
        "opset": opset,
        "max_opset": vocab.MAX_OPSET[info.version],
        "ir_version": model.ir_version,
        "max_ir_version": vocab.MAX_IR_VERSION[info.version],
    }
    if problems:
        report.add(
            NAME,
            FAILED,
            figure,
            f"{target} would not run the model: " + "; ".join(problems),
            problems=problems,
            **details,
        )
        return
    report.add(NAME, PASSED, figure, f"opset, IR version and ops readable by {target}", **details)


def _ops_missing_at(model: Any, opset: int) -> list[str]:
    """Standard-domain op types with no definition at or below ``opset``."""
    import onnx

    from czbuild.onnx_graph.canonical import all_nodes

    missing: dict[str, str] = {}
    for node in all_nodes(model.graph):
        if node.domain not in _STANDARD_DOMAINS or node.op_type in missing:
            continue
        try:
            onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:
            missing[node.op_type] = node.name
    return [
        f"op {op} does not exist at opset {opset} (at {name or '?'})"
        for op, name in sorted(missing.items())
    ]
