"""Canonical ONNX: bytes that depend only on the graph, never on the process that made it.

TensorFlow and tf2onnx name nodes from process-global counters (``functional_3/conv2d_7/...``,
``Reshape__123``) and embed function names and temporary paths in doc strings, so the same
model converted after other work in the same process would otherwise serialise differently.
:func:`canonicalize_onnx` clears what carries history and renames everything in an order
derived from the graph's structure. Pure ONNX: no TensorFlow is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto

from czbuild.errors import ConversionError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
PRODUCER_NAME = "czbuild"
GRAPH_NAME = "czbuild"


def all_nodes(graph: GraphProto) -> Iterable[NodeProto]:
    """Every node of ``graph`` and of its subgraphs (If/Loop bodies), depth first."""
    for node in graph.node:
        yield node
        for sub in _subgraphs(node):
            yield from all_nodes(sub)


def _subgraphs(node: NodeProto) -> list[GraphProto]:
    out: list[GraphProto] = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            out.append(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            out.extend(attr.graphs)
    return out


def serialize_onnx(proto: ModelProto) -> bytes:
    """Deterministic protobuf serialisation."""
    return proto.SerializeToString(deterministic=True)


def canonicalize_onnx(model_proto: ModelProto) -> ModelProto:
    """Return a canonical copy of ``model_proto`` (the input is not modified).

    * model, graph, node, value and tensor ``doc_string`` cleared; ``metadata_props`` removed;
      producer fixed to ``czbuild`` with an empty version (the real toolchain versions belong
      in the build manifest); graph name fixed;
    * nodes ordered by a depth-first walk from the graph outputs that visits inputs in their
      slot order: the order depends only on the graph's structure, never on names; nodes that
      do not contribute to an output are dropped;
    * nodes renamed ``<OpType>_<index>``, their outputs ``<node>_out<k>``, initializers
      ``const_<k>`` in order of first use (unused ones dropped); graph inputs keep their
      names; one output is named ``output`` (several: ``output_<k>``); symbolic dims renamed
      ``dim_<k>`` in order of appearance; subgraphs (If/Loop bodies) likewise, prefixed;
    * node attributes and ``value_info`` sorted; opset imports reduced to the domains used.

    Raises:
        ConversionError: the graph references a value nothing defines, or has a cycle.
    """
    model = ModelProto()
    model.CopyFrom(model_proto)
    if len(model.graph.sparse_initializer) or len(model.functions):
        raise ConversionError(
            "ONNX models with sparse initializers or local functions are not supported"
        )
    model.ClearField("doc_string")
    model.producer_name = PRODUCER_NAME
    for field in ("producer_version", "domain", "model_version"):
        model.ClearField(field)
    del model.metadata_props[:]
    model.graph.name = GRAPH_NAME
    _GraphCanonicalizer(model.graph, resolve_outer=lambda _: None, prefix="", top=True).run()
    _rename_dim_params(model.graph)
    used = {n.domain for n in all_nodes(model.graph)} | {""}
    imports = sorted(
        ((o.domain, o.version) for o in model.opset_import if o.domain in used or o.domain == ""),
    )
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    return model


class _GraphCanonicalizer:
    """Renames and reorders one graph in place; recurses into subgraphs."""

    def __init__(
        self,
        graph: GraphProto,
        *,
        resolve_outer: Callable[[str], str | None],
        prefix: str,
        top: bool,
    ) -> None:
        self.graph = graph
        self.resolve_outer = resolve_outer
        self.prefix = prefix
        self.top = top
        self.names: dict[str, str] = {}
        self.producer = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
        self.initializers = {t.name: t for t in graph.initializer}
        self.used_inits: list[str] = []
        self._implicit: dict[int, list[str]] = {}

    # ordering

    def _deps(self, index: int) -> list[str]:
        node = self.graph.node[index]
        if index not in self._implicit:
            self._implicit[index] = [
                name for sub in _subgraphs(node) for name in _implicit_inputs(sub)
            ]
        return [x for x in node.input if x] + self._implicit[index]

    def order(self) -> list[int]:
        """Post-order DFS from the outputs; inputs visited in slot order."""
        state: dict[int, int] = {}  # 1 = on the stack, 2 = done
        order: list[int] = []
        for out in self.graph.output:
            root = self.producer.get(out.name)
            if root is None or root in state:
                continue
            state[root] = 1
            stack = [(root, iter(self._deps(root)))]
            while stack:
                index, deps = stack[-1]
                for name in deps:
                    dep = self.producer.get(name)
                    if dep is None or state.get(dep) == 2:
                        continue
                    if state.get(dep) == 1:
                        raise ConversionError(f"ONNX graph has a cycle through {name!r}")
                    state[dep] = 1
                    stack.append((dep, iter(self._deps(dep))))
                    break
                else:
                    stack.pop()
                    state[index] = 2
                    order.append(index)
        return order

    # renaming

    def resolve(self, name: str) -> str | None:
        """The new name of a value visible in this graph (initializers named on first use)."""
        if name in self.names:
            return self.names[name]
        if name in self.initializers:
            new = f"{self.prefix}const_{len(self.used_inits)}"
            self.names[name] = new
            self.used_inits.append(name)
            return new
        return self.resolve_outer(name)

    def _lookup(self, name: str) -> str:
        if not name:
            return name
        new = self.resolve(name)
        if new is None:
            raise ConversionError(f"ONNX graph references {name!r}, which nothing defines")
        return new

    def run(self) -> None:
        graph = self.graph
        for k, value in enumerate(graph.input):
            self.names[value.name] = value.name if self.top else f"{self.prefix}in{k}"
        wanted: list[str | None] = [None] * len(graph.output)
        direct: dict[str, str] = {}  # node output -> graph output name it gets directly
        if self.top:
            many = len(graph.output) > 1
            for k, value in enumerate(graph.output):
                wanted[k] = f"{OUTPUT_NAME}_{k}" if many else OUTPUT_NAME
                if value.name in self.producer and value.name not in direct:
                    direct[value.name] = wanted[k]  # type: ignore[assignment]
        new_nodes = [
            self._rename_node(graph.node[j], i, direct) for i, j in enumerate(self.order())
        ]
        # Outputs not produced directly (a graph input, an initializer, a repeated output).
        for k, value in enumerate(graph.output):
            current = self._lookup(value.name)
            target = wanted[k]
            if target is not None and current != target:
                new_nodes.append(
                    onnx.helper.make_node(
                        "Identity",
                        [current],
                        [target],
                        name=f"{self.prefix}Identity_{len(new_nodes)}",
                    )
                )
                current = target
            value.name = current
            value.ClearField("doc_string")
        for value in graph.input:
            value.name = self.names[value.name]
            value.ClearField("doc_string")
        inits = []
        for old_name in self.used_inits:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(self.initializers[old_name])
            tensor.name = self.names[old_name]
            tensor.ClearField("doc_string")
            inits.append(tensor)
        position = {o: i for i, o in enumerate(o for n in new_nodes for o in n.output if o)}
        infos = []
        for info in graph.value_info:
            new = self.names.get(info.name)
            if new is None or new not in position:
                continue
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = new
            copy.ClearField("doc_string")
            infos.append(copy)
        infos.sort(key=lambda v: position[v.name])
        graph.ClearField("doc_string")
        del graph.node[:]
        graph.node.extend(new_nodes)
        del graph.initializer[:]
        graph.initializer.extend(inits)
        del graph.value_info[:]
        graph.value_info.extend(infos)
        if not self.top:
            graph.name = self.prefix.rstrip("_")

    def _rename_node(self, old: NodeProto, index: int, direct: Mapping[str, str]) -> NodeProto:
        node = NodeProto()
        node.CopyFrom(old)
        node.name = f"{self.prefix}{node.op_type}_{index}"
        node.ClearField("doc_string")
        inputs = [self._lookup(x) for x in node.input]
        del node.input[:]
        node.input.extend(inputs)
        attrs = []
        for attr in sorted(old.attribute, key=lambda a: a.name):
            copy = AttributeProto()
            copy.CopyFrom(attr)
            copy.ClearField("doc_string")
            self._canon_attr(copy, node.name)
            attrs.append(copy)
        del node.attribute[:]
        node.attribute.extend(attrs)
        outputs = []
        for k, out in enumerate(old.output):
            if out:
                self.names[out] = direct.get(out) or f"{node.name}_out{k}"
            outputs.append(self.names[out] if out else out)
        del node.output[:]
        node.output.extend(outputs)
        return node

    def _canon_attr(self, attr: AttributeProto, node_name: str) -> None:
        if attr.type == AttributeProto.TENSOR:
            attr.t.ClearField("name")
            attr.t.ClearField("doc_string")
        elif attr.type == AttributeProto.TENSORS:
            for t in attr.tensors:
                t.ClearField("name")
                t.ClearField("doc_string")
        elif attr.type == AttributeProto.GRAPH:
            self._canon_sub(attr.g, f"{node_name}_{attr.name}_")
        elif attr.type == AttributeProto.GRAPHS:
            for k, sub in enumerate(attr.graphs):
                self._canon_sub(sub, f"{node_name}_{attr.name}{k}_")

    def _canon_sub(self, sub: GraphProto, prefix: str) -> None:
        _GraphCanonicalizer(sub, resolve_outer=self.resolve, prefix=prefix, top=False).run()


def _implicit_inputs(graph: GraphProto) -> list[str]:
    """Names a subgraph reads from enclosing scopes, in order of first use."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    seen: list[str] = []
    for node in graph.node:
        for name in list(node.input) + [
            n for sub in _subgraphs(node) for n in _implicit_inputs(sub)
        ]:
            if name and name not in defined and name not in seen:
                seen.append(name)
        defined.update(o for o in node.output if o)
    for value in graph.output:
        if value.name not in defined and value.name not in seen:
            seen.append(value.name)
    return seen


def _rename_dim_params(graph: GraphProto) -> None:
    """Rename symbolic dims (tf2onnx: ``unk__123``) to ``dim_<k>`` by first appearance."""
    mapping: dict[str, str] = {}
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = mapping.setdefault(dim.dim_param, f"dim_{len(mapping)}")
            dim.ClearField("denotation")
