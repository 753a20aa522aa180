"""Checks of an ONNX payload: ``payload.model``, ``payload.io`` and ``payload.opset``.

* ``payload.model``: the bytes parse as one ONNX ``ModelProto``, pass ``onnx.checker`` (full
  check, with shape inference) and embed every weight (no external data).
* ``payload.io``: one input and one output, float32, batch dim 1 or symbolic, rank and dims
  agreeing with ``InputShape``/``OutputShape`` (legacy: fixed H and W, class count, and a
  warning when the pixel types imply another channel count, §6 rule 13).
* ``payload.opset``: only the standard ``ai.onnx`` domain, opset between ``vocab.MIN_OPSET`` and
  ``vocab.MAX_OPSET[version]``, ``ir_version`` at most ``vocab.MAX_IR_VERSION[version]``.
"""

from __future__ import annotations

from typing import Any

from czbuild.formats import runtime, vocab
from czbuild.verify.info import ModelInfo
from czbuild.verify.report import FAILED, PASSED, WARNING, VerifyReport

_STANDARD_DOMAINS = ("", "ai.onnx")


def check_onnx(data: bytes, info: ModelInfo, report: VerifyReport) -> ModelInfo | None:
    """Run the three ONNX checks.

    Args:
        data: The ``model.model`` / ``<id>.model`` bytes.
        info: Facts from the metadata.
        report: Receives the checks.

    Returns:
        ``info`` with the shapes filled in (legacy) when the payload can be run, else None.
    """
    model = _check_model(data, report)
    if model is None:
        _skip_rest(report, "the ONNX model did not load")
        return None
    filled = _check_io(model, info, report)
    _check_opset(model, info, report)
    return filled


def _check_model(data: bytes, report: VerifyReport) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        report.add("payload.model", FAILED, "not ONNX", f"the payload is not an ONNX model: {exc}")
        return None
    if not model.HasField("graph") or not model.graph.node:
        report.add(
            "payload.model",
            FAILED,
            "not ONNX",
            "the payload parses but holds no ONNX graph (not an ONNX model?)",
        )
        return None
    from czbuild.onnx_graph.checks import passed_checker

    problems: list[str] = []
    try:
        # A build verifies in the process that converted: the converter already ran the
        # same full check on these very bytes (serialize_checked), so it runs once.
        if not passed_checker(data):
            onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        problems.append(f"onnx.checker: {type(exc).__name__}: {str(exc).strip()[:500]}")
    external = [
        t.name
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data
    ]
    if external:
        problems.append(f"weights stored as external data: {external[:5]}")
    params = sum(_numel(t.dims) for t in model.graph.initializer)
    details = {
        "nodes": len(model.graph.node),
        "parameters": params,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }
    if problems:
        report.add(
            "payload.model",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
            **details,
        )
        return None
    report.add(
        "payload.model",
        PASSED,
        f"{len(model.graph.node)} nodes, {params} weights",
        "ONNX model loads, passes onnx.checker and embeds all weights",
        **details,
    )
    return model


def _check_opset(model: Any, info: ModelInfo, report: VerifyReport) -> None:
    problems: list[str] = []
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    standard = [v for d, v in opsets.items() if d in _STANDARD_DOMAINS]
    opset = max(standard) if standard else None
    limit = vocab.MAX_OPSET.get(info.version)
    max_ir = vocab.MAX_IR_VERSION.get(info.version)
    if limit is not None:  # the opset and IR limits: one rule, owned by formats.runtime
        problems.extend(runtime.onnx_runtime_problems(info.version, opset, model.ir_version))
    elif opset is None:
        problems.append("no ai.onnx opset import")
    others = sorted(d for d in opsets if d not in _STANDARD_DOMAINS)
    if others:
        problems.append(f"non-standard opset domains {others}")
    node_domains = sorted({n.domain for n in model.graph.node} - set(_STANDARD_DOMAINS))
    if node_domains:
        problems.append(f"nodes from non-standard domains {node_domains}")
    if len(model.functions):
        problems.append(f"{len(model.functions)} model-local functions")
    figure = f"opset {opset}, IR {model.ir_version}"
    details = {
        "opset": opset,
        "max_opset": limit,
        "ir_version": model.ir_version,
        "max_ir_version": max_ir,
        "domains": sorted(opsets),
    }
    if problems:
        report.add(
            "payload.opset", FAILED, figure, "; ".join(problems), problems=problems, **details
        )
    else:
        report.add(
            "payload.opset",
            PASSED,
            figure,
            f"standard domain only, opset and IR version readable by "
            f"{info.family.upper()} {info.version} targets",
            **details,
        )


def _dims(value_info: Any) -> tuple[int, list[int | None]] | None:
    """(elem_type, dims) of a tensor value, dims None where symbolic; None if not a tensor."""
    if not value_info.type.HasField("tensor_type"):
        return None
    tensor = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return tensor.elem_type, dims


def _check_io(model: Any, info: ModelInfo, report: VerifyReport) -> ModelInfo | None:
    import onnx

    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in init_names]
    outputs = list(graph.output)
    problems: list[str] = []
    warnings: list[str] = []
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(
            f"{len(inputs)} inputs and {len(outputs)} outputs; exactly one each is required"
        )
        report.add(
            "payload.io",
            FAILED,
            f"{len(inputs)} in / {len(outputs)} out",
            "; ".join(problems),
            problems=problems,
        )
        return None
    shapes = {}
    for role, value in (("input", inputs[0]), ("output", outputs[0])):
        parsed = _dims(value)
        if parsed is None:
            problems.append(f"{role} {value.name!r} is not a tensor")
            continue
        elem_type, dims = parsed
        if elem_type != onnx.TensorProto.FLOAT:
            problems.append(
                f"{role} {value.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(elem_type)}, not FLOAT (float32)"
            )
        if not dims:
            problems.append(f"{role} {value.name!r} has no shape")
            continue
        if dims[0] not in (None, 1):
            problems.append(f"{role} batch dim is {dims[0]}; must be 1 or symbolic")
        shapes[role] = dims
    if problems:
        report.add(
            "payload.io",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
        )
        return None
    in_dims, out_dims = shapes["input"], shapes["output"]
    if info.family == "czmodel":
        info = _legacy_shapes(in_dims, out_dims, info, problems, warnings)
    else:
        _match("InputShape", in_dims, info.input_shape, problems)
        _match("OutputShape", out_dims, info.output_shape, problems)
    figure = f"{_fmt(in_dims)} -> {_fmt(out_dims)}"
    details = {
        "input": _fmt(in_dims),
        "output": _fmt(out_dims),
        "input_name": inputs[0].name,
        "output_name": outputs[0].name,
    }
    if problems:
        report.add(
            "payload.io",
            FAILED,
            figure,
            "; ".join(problems + warnings),
            problems=problems,
            warnings=warnings,
            **details,
        )
        return None
    status = WARNING if warnings else PASSED
    message = (
        "; ".join(warnings)
        if warnings
        else ("one float32 input and output, batch 1 or symbolic, shapes agree with the metadata")
    )
    report.add("payload.io", status, figure, message, warnings=warnings, **details)
    return info


def _match(
    key: str, dims: list[int | None], shape: tuple[int, ...] | None, problems: list[str]
) -> None:
    if shape is None:
        return
    if len(dims) != len(shape) + 1:
        problems.append(
            f"model rank {len(dims)} (with batch) but {key} {list(shape)} needs {len(shape) + 1}"
        )
        return
    for axis, (have, want) in enumerate(zip(dims[1:], shape)):
        if have is not None and have != want:
            problems.append(f"{key}[{axis}] is {want} but the model's dim is {have}")


def _legacy_shapes(
    in_dims: list[int | None],
    out_dims: list[int | None],
    info: ModelInfo,
    problems: list[str],
    warnings: list[str],
) -> ModelInfo:
    if len(in_dims) != 4 or len(out_dims) != 4:
        problems.append(
            f"legacy models are 2D: input rank {len(in_dims)}, output rank "
            f"{len(out_dims)}, both must be 4 (N, H, W, C)"
        )
        return info
    if any(d is None for d in in_dims[1:]):
        problems.append(f"legacy models need fixed H, W and C, input is {_fmt(in_dims)}")
    if out_dims[-1] is not None and info.classes and out_dims[-1] != len(info.classes):
        problems.append(
            f"the model outputs {out_dims[-1]} channels but the metadata lists "
            f"{len(info.classes)} classes"
        )
    for axis in (1, 2):
        if None not in (in_dims[axis], out_dims[axis]) and in_dims[axis] != out_dims[axis]:
            problems.append(
                f"output spatial size {_fmt(out_dims)} differs from input {_fmt(in_dims)}"
            )
            break
    channels = in_dims[-1]
    expected = sum(vocab.PIXEL_TYPE_CHANNELS.get(p, 0) for p in info.pixel_types)
    if channels is not None and info.pixel_types and channels != expected:
        warnings.append(
            f"pixel types {list(info.pixel_types)} carry {expected} channel(s) but "
            f"the model takes {channels} (§6 rule 13; ZEN behaviour unconfirmed)"
        )
    if problems:
        return info
    h, w, c = in_dims[1], in_dims[2], in_dims[3]
    n = out_dims[3] if out_dims[3] is not None else len(info.classes or ())
    return info.with_shapes((h, w, c), (h, w, n))  # type: ignore[arg-type]


def _fmt(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _skip_rest(report: VerifyReport, reason: str) -> None:
    for name in ("payload.io", "payload.opset"):
        report.add(name, "skipped", None, reason)
