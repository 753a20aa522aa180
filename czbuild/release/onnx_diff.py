"""Field-level differences between two ONNX payloads.

Compares, in this order: IR version, opsets, producer, model/graph doc strings and metadata
properties; graph inputs and outputs (names, element types, shapes); nodes (count, op-type
histogram, then node by node: op type, name, inputs, outputs, attributes, doc string);
initializers by name (missing, extra, dtype, shape, values with the largest absolute
difference, encoding); value_info. Two models equal in all of that but not in bytes are
reported as a serialisation difference.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from czbuild.release.difference import ONNX, Difference, show

Labels = tuple[str, str]
MAX_NODE_DIFFERENCES = 5


def explain_onnx(member: str, exp: bytes, act: bytes, labels: Labels) -> list[Difference]:
    """Differences between the ONNX models ``exp`` and ``act`` stored in ``member``."""
    import onnx

    models = []
    for side, data in zip(labels, (exp, act)):
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception as exc:
            return [
                Difference(
                    ONNX,
                    f"member {member}: the {side} payload is not a parseable ONNX model: {exc}",
                    member=member,
                )
            ]
        models.append(model)
    e, a = models
    out = _Collector(member, labels)
    _model_fields(out, e, a)
    _io(out, e.graph, a.graph)
    _nodes(out, e.graph, a.graph)
    _initializers(out, e.graph, a.graph)
    _value_info(out, e.graph, a.graph)
    if not out.diffs:
        how = (
            "the deterministic serialisations are equal, so only field order or encoding differs"
            if e.SerializeToString(deterministic=True) == a.SerializeToString(deterministic=True)
            else "unknown fields or encodings differ"
        )
        out.add("(serialisation)", f"same ONNX content, but the bytes differ: {how}")
    return out.diffs


class _Collector:
    def __init__(self, member: str, labels: Labels) -> None:
        self.member = member
        self.labels = labels
        self.diffs: list[Difference] = []

    def add(self, field: str, message: str, expected: Any = None, actual: Any = None) -> None:
        self.diffs.append(
            Difference(
                ONNX,
                f"member {self.member}: {message}",
                member=self.member,
                field=field,
                expected=expected,
                actual=actual,
            )
        )

    def value(self, field: str, what: str, exp: Any, act: Any) -> None:
        if exp != act:
            self.add(
                field,
                f"{what} differs: {show(exp)} ({self.labels[0]}) vs {show(act)} ({self.labels[1]})",
                exp,
                act,
            )


def _model_fields(out: _Collector, e: Any, a: Any) -> None:
    out.value("ir_version", "ir_version", e.ir_version, a.ir_version)
    out.value("opset", "opset imports", _opsets(e), _opsets(a))
    out.value(
        "producer",
        "producer",
        f"{e.producer_name} {e.producer_version}".strip(),
        f"{a.producer_name} {a.producer_version}".strip(),
    )
    out.value("domain", "model domain", e.domain, a.domain)
    out.value("model_version", "model_version", e.model_version, a.model_version)
    out.value("doc_string", "model doc_string", e.doc_string, a.doc_string)
    out.value("metadata_props", "metadata_props", _props(e), _props(a))
    out.value("graph.name", "graph name", e.graph.name, a.graph.name)
    out.value("graph.doc_string", "graph doc_string", e.graph.doc_string, a.graph.doc_string)


def _opsets(model: Any) -> dict[str, int]:
    return {o.domain or "ai.onnx": o.version for o in model.opset_import}


def _props(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _value_type(value: Any) -> tuple[int, list[Any]]:
    tensor = value.type.tensor_type
    dims = [
        d.dim_param
        if d.HasField("dim_param")
        else (d.dim_value if d.HasField("dim_value") else "?")
        for d in tensor.shape.dim
    ]
    return tensor.elem_type, dims


def _io(out: _Collector, e: Any, a: Any) -> None:
    inits_e = {t.name for t in e.initializer}
    inits_a = {t.name for t in a.initializer}
    for role, exp_list, act_list in (
        (
            "input",
            [v for v in e.input if v.name not in inits_e],
            [v for v in a.input if v.name not in inits_a],
        ),
        ("output", list(e.output), list(a.output)),
    ):
        exp_names, act_names = [v.name for v in exp_list], [v.name for v in act_list]
        if exp_names != act_names:
            out.add(
                f"graph.{role}s",
                f"graph {role} names differ: {exp_names} ({out.labels[0]}) "
                f"vs {act_names} ({out.labels[1]})",
                exp_names,
                act_names,
            )
            continue
        for ev, av in zip(exp_list, act_list):
            (et, ed), (at, ad) = _value_type(ev), _value_type(av)
            if et != at:
                out.add(
                    f"{role}:{ev.name}",
                    f"graph {role} '{ev.name}' element type differs: "
                    f"{et} ({out.labels[0]}) vs {at} ({out.labels[1]})",
                    et,
                    at,
                )
            if ed != ad:
                out.add(
                    f"{role}:{ev.name}",
                    f"graph {role} '{ev.name}' shape differs: {ed} "
                    f"({out.labels[0]}) vs {ad} ({out.labels[1]})",
                    ed,
                    ad,
                )


def _attribute_values(node: Any) -> dict[str, Any]:
    import onnx

    values = {}
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH or attr.type == onnx.AttributeProto.GRAPHS:
            values[attr.name] = attr.SerializeToString(deterministic=True)
        else:
            value = onnx.helper.get_attribute_value(attr)
            if hasattr(value, "SerializeToString"):
                value = value.SerializeToString(deterministic=True)
            values[attr.name] = value
    return values


def _nodes(out: _Collector, e: Any, a: Any) -> None:
    exp_nodes, act_nodes = list(e.node), list(a.node)
    exp_ops, act_ops = Counter(n.op_type for n in exp_nodes), Counter(n.op_type for n in act_nodes)
    if len(exp_nodes) != len(act_nodes) or exp_ops != act_ops:
        changes = []
        for op in sorted(set(exp_ops) | set(act_ops)):
            delta = act_ops[op] - exp_ops[op]
            if delta:
                changes.append(f"{delta:+d} {op}")
        out.add(
            "nodes",
            f"node count differs: {len(exp_nodes)} ({out.labels[0]}) vs "
            f"{len(act_nodes)} ({out.labels[1]}); op types: {', '.join(changes) or 'same'}",
            len(exp_nodes),
            len(act_nodes),
        )
        return
    reported = 0
    differing = 0
    for index, (en, an) in enumerate(zip(exp_nodes, act_nodes)):
        problems = []
        for what, ev, av in (
            ("op type", en.op_type, an.op_type),
            ("domain", en.domain, an.domain),
            ("name", en.name, an.name),
            ("inputs", list(en.input), list(an.input)),
            ("outputs", list(en.output), list(an.output)),
            ("doc_string", en.doc_string, an.doc_string),
        ):
            if ev != av:
                problems.append(f"{what} {show(ev)} vs {show(av)}")
        ea, aa = _attribute_values(en), _attribute_values(an)
        for name in sorted(set(ea) | set(aa)):
            if ea.get(name) != aa.get(name):
                problems.append(
                    f"attribute {name} {_short(ea.get(name))} vs {_short(aa.get(name))}"
                )
        if not problems:
            continue
        differing += 1
        if reported < MAX_NODE_DIFFERENCES:
            reported += 1
            out.add(
                f"node:{index}",
                f"node {index} ({en.op_type} '{en.name}') differs: "
                + "; ".join(problems)
                + f" ({out.labels[0]} vs "
                f"{out.labels[1]})",
            )
    if differing > reported:
        out.add("nodes", f"... and {differing - reported} more differing nodes")


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return show(value)


def _initializers(out: _Collector, e: Any, a: Any) -> None:
    from onnx import numpy_helper

    exp = {t.name: t for t in e.initializer}
    act = {t.name: t for t in a.initializer}
    for name in [n for n in exp if n not in act]:
        out.add(f"initializer:{name}", f"initializer {name} is missing in {out.labels[1]}")
    for name in [n for n in act if n not in exp]:
        out.add(f"initializer:{name}", f"initializer {name} appears only in {out.labels[1]}")
    for name in [n for n in exp if n in act]:
        et, at = exp[name], act[name]
        if et.SerializeToString(deterministic=True) == at.SerializeToString(deterministic=True):
            continue
        field = f"initializer:{name}"
        if et.data_type != at.data_type or list(et.dims) != list(at.dims):
            out.add(
                field,
                f"initializer {name} differs: dtype/shape {et.data_type} "
                f"{list(et.dims)} ({out.labels[0]}) vs {at.data_type} "
                f"{list(at.dims)} ({out.labels[1]})",
            )
            continue
        try:
            ev, av = numpy_helper.to_array(et), numpy_helper.to_array(at)
        except Exception as exc:
            out.add(field, f"initializer {name} differs (values not comparable: {exc})")
            continue
        if ev.tobytes() == av.tobytes():
            out.add(
                field,
                f"initializer {name} has the same values but is encoded differently "
                "(raw_data vs typed fields, or doc_string/name fields)",
            )
            continue
        out.add(field, _value_message(name, ev, av))


def _value_message(name: str, ev: Any, av: Any) -> str:
    import numpy as np

    if ev.dtype.kind in "fc" or ev.dtype.kind in "iu":
        diff = np.abs(ev.astype(np.float64) - av.astype(np.float64))
        changed = int(np.count_nonzero(ev != av))
        return (
            f"initializer {name} differs: max abs diff {float(diff.max()):.3g} "
            f"({changed} of {ev.size} values)"
        )
    changed = int(np.count_nonzero(ev != av))
    return f"initializer {name} differs ({changed} of {ev.size} values)"


def _value_info(out: _Collector, e: Any, a: Any) -> None:
    exp = {v.name: _value_type(v) for v in e.value_info}
    act = {v.name: _value_type(v) for v in a.value_info}
    if exp == act:
        return
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    changed = sorted(n for n in set(exp) & set(act) if exp[n] != act[n])
    parts = []
    if missing:
        parts.append(f"{len(missing)} only in {out.labels[0]} (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} only in {out.labels[1]} (e.g. {extra[0]})")
    if changed:
        parts.append(
            f"{len(changed)} with other types/shapes (e.g. {changed[0]}: "
            f"{exp[changed[0]][1]} vs {act[changed[0]][1]})"
        )
    out.add("value_info", "value_info differs: " + "; ".join(parts))
