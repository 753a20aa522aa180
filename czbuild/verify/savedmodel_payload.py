"""Checks of a zipped SavedModel payload (legacy 3.0.0; CZANN 1.x may carry one too).

* ``payload.model``: the nested ZIP is sound (same bounded reader as the container), every
  member name is a plain relative path, it unpacks (into a private temporary folder, never
  outside it) to a directory that ``tf.saved_model.load`` reads, with a ``serving_default``
  signature.
* ``payload.io``: that signature has one float32 input and one float32 output, batch 1 or
  undefined, fixed H/W/C, the class count as its last output dim.
* ``payload.hygiene``: the nested ZIP follows §7.1 (sorted paths, fixed times and modes);
  a warning for foreign files, a failure for czbuild's own.
* ``payload.opset``: skipped (no ONNX opset; TF 2.0.0 op availability is
  ``payload.runtime_compat``, :mod:`czbuild.verify.runtime_compat`).
"""

from __future__ import annotations

import stat
from dataclasses import replace

from czbuild.errors import ArchiveError, CzbuildError
from czbuild.formats.container import SAVEDMODEL_LIMITS, Container, Member, read_container
from czbuild.formats.runner import SavedModelRunner
from czbuild.verify.hygiene import FILE_ATTR, UNIX
from czbuild.verify.info import ModelInfo
from czbuild.verify.report import FAILED, PASSED, SKIPPED, WARNING, VerifyReport


def check_savedmodel(
    data: bytes, info: ModelInfo, report: VerifyReport, *, strict: bool, max_bytes: int
) -> tuple[ModelInfo, SavedModelRunner] | None:
    """Run the SavedModel payload checks; return the filled-in info and a runner, or None."""
    nested = _read_nested(data, report, max_bytes)
    if nested is None:
        _skip(report, "the SavedModel payload did not load")
        return None
    try:
        runner = SavedModelRunner(nested)
    except CzbuildError as exc:
        report.add("payload.model", FAILED, "unloadable", str(exc))
        _skip(report, "the SavedModel payload did not load", hygiene=False)
        _hygiene(nested, report, strict)
        return None
    report.add(
        "payload.model",
        PASSED,
        "SavedModel",
        "zipped SavedModel unpacks safely and loads with a serving_default signature",
        signatures=runner.signatures,
    )
    try:
        result = _check_io(runner, info, report)
        report.add(
            "payload.opset",
            SKIPPED,
            None,
            "SavedModel payload: no ONNX opset (TF 2.0.0 ops: see payload.runtime_compat)",
        )
        _hygiene(nested, report, strict)
    except BaseException:
        runner.close()
        raise
    if result is None:
        runner.close()
        return None
    return result, runner


def _read_nested(data: bytes, report: VerifyReport, max_bytes: int) -> Container | None:
    try:
        nested = read_container(
            data, limits=replace(SAVEDMODEL_LIMITS, max_bytes=max_bytes), label="SavedModel payload"
        )
    except ArchiveError as exc:
        report.add("payload.model", FAILED, "unreadable", str(exc))
        return None
    problems = nested.problems + nested.name_problems
    problems += [f"{m.name!r} is a symbolic link" for m in nested.members if _is_link(m)]
    if "saved_model.pb" not in nested.names():
        problems.append("no saved_model.pb at the root of the payload")
    if problems:
        report.add(
            "payload.model",
            FAILED,
            f"{len(problems)} problem(s)",
            "; ".join(problems),
            problems=problems,
        )
        return None
    return nested


def _is_link(member: Member) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


def _check_io(runner: SavedModelRunner, info: ModelInfo, report: VerifyReport) -> ModelInfo | None:
    import tensorflow as tf

    in_spec, out_spec = runner.input_spec, runner.output_spec
    problems: list[str] = []
    if in_spec is None or out_spec is None:
        _, kwargs = runner.signature.structured_input_signature
        outputs = runner.signature.structured_outputs
        n_out = len(outputs) if isinstance(outputs, dict) else "?"
        report.add(
            "payload.io",
            FAILED,
            f"{len(kwargs)} in / {n_out} out",
            "the serving signature must have exactly one input and one output",
        )
        return None
    in_dims = list(in_spec.shape.as_list()) if in_spec.shape.rank is not None else []
    out_dims = list(out_spec.shape.as_list()) if out_spec.shape.rank is not None else []
    for role, spec in (("input", in_spec), ("output", out_spec)):
        if spec.dtype != tf.float32:
            problems.append(f"{role} dtype {spec.dtype.name}, not float32")
    if len(in_dims) != 4 or len(out_dims) != 4:
        problems.append(f"input {in_dims} / output {out_dims}: both must be rank 4 (N, H, W, C)")
    else:
        if in_dims[0] not in (None, 1) or out_dims[0] not in (None, 1):
            problems.append("batch dim must be 1 or undefined")
        if any(d is None for d in in_dims[1:]):
            problems.append(f"legacy models need fixed H, W and C, input is {in_dims}")
        if info.classes and out_dims[-1] not in (None, len(info.classes)):
            problems.append(
                f"the model outputs {out_dims[-1]} channels but the metadata lists "
                f"{len(info.classes)} classes"
            )
        if (
            info.input_shape is not None
            and None not in in_dims[1:]
            and tuple(in_dims[1:]) != tuple(info.input_shape)
        ):
            problems.append(f"input {in_dims[1:]} differs from InputShape {list(info.input_shape)}")
    figure = f"{_fmt(in_dims)} -> {_fmt(out_dims)}"
    if problems:
        report.add("payload.io", FAILED, figure, "; ".join(problems), problems=problems)
        return None
    report.add(
        "payload.io",
        PASSED,
        figure,
        "serving signature: one float32 input and output of the expected shapes",
        input_name=runner.input_name,
        output_name=runner.output_name,
    )
    h, w, c = in_dims[1:]
    n = out_dims[-1] if out_dims[-1] is not None else len(info.classes or ())
    return info if info.input_shape is not None else info.with_shapes((h, w, c), (h, w, n))


def _fmt(dims: list) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _hygiene(nested: Container, report: VerifyReport, strict: bool) -> None:
    problems: list[str] = []
    names = nested.names()
    if names != sorted(names):
        problems.append("members not sorted by path")
    if any(m.is_dir for m in nested.members):
        problems.append("directory entries")
    if len({m.date_time for m in nested.members}) > 1:
        problems.append("different entry times")
    if any(m.external_attr != FILE_ATTR or m.create_system != UNIX for m in nested.members):
        problems.append("file modes other than 0o100644 / create_system 3")
    if any(m.compress_type != 0 for m in nested.members):
        problems.append("compressed entries")
    if not problems:
        report.add(
            "payload.hygiene",
            PASSED,
            "canonical",
            "nested SavedModel zip: sorted paths, fixed times and modes, stored",
        )
        return
    report.add(
        "payload.hygiene",
        FAILED if strict else WARNING,
        f"{len(problems)} deviation(s)",
        "nested SavedModel zip: " + "; ".join(problems),
        problems=problems,
    )


def _skip(report: VerifyReport, reason: str, *, hygiene: bool = True) -> None:
    names = ("payload.io", "payload.opset") + (("payload.hygiene",) if hygiene else ())
    for name in names:
        if report.get(name) is None:
            report.add(name, SKIPPED, None, reason)
