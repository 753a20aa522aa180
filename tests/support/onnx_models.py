"""Tiny seeded ONNX models built with ``onnx.helper`` (no framework needed).

:func:`unet_onnx` makes a two-level U-Net (Conv, Relu, MaxPool, Resize, Concat, Softmax) in
2D or 3D, channels-first as PyTorch exports it, or channels-last with the two transposes a
TensorFlow export carries.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def unet_onnx(
    *,
    channels: int = 1,
    classes: int = 2,
    dims: int = 2,
    channels_first: bool = True,
    spatial: tuple[int | None, ...] | None = None,
    opset: int = 12,
    seed: int = 0,
    width: int = 4,
) -> onnx.ModelProto:
    """A tiny U-Net; ``spatial`` None leaves the spatial dims free (symbolic)."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    k = (3,) * dims

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv(name: str, x: str, cin: int, cout: int, kernel: tuple[int, ...] = k) -> str:
        w = const(f"{name}_w", rng.normal(0, 0.4, (cout, cin, *kernel)))
        b = const(f"{name}_b", rng.normal(0, 0.1, (cout,)))
        pads = [ks // 2 for ks in kernel] * 2
        nodes.append(
            helper.make_node("Conv", [x, w, b], [name], pads=pads, kernel_shape=list(kernel))
        )
        return name

    def relu(x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [x + "_r"]))
        return x + "_r"

    x = "image"
    if not channels_first:
        nodes.append(
            helper.make_node(
                "Transpose", ["image"], ["image_t"], perm=[0, dims + 1, *range(1, dims + 1)]
            )
        )
        x = "image_t"
    e1 = relu(conv("enc1", x, channels, width))
    nodes.append(
        helper.make_node("MaxPool", [e1], ["pool"], kernel_shape=[2] * dims, strides=[2] * dims)
    )
    e2 = relu(conv("enc2", "pool", width, 2 * width))
    scales = const("scales", np.array([1, 1] + [2] * dims))
    roi = const("roi", np.zeros((0,)))  # required before opset 13
    nodes.append(helper.make_node("Resize", [e2, roi, scales], ["up"], mode="nearest"))
    nodes.append(helper.make_node("Concat", ["up", e1], ["cat"], axis=1))
    d1 = relu(conv("dec1", "cat", 3 * width, width))
    logits = conv("head", d1, width, classes, kernel=(1,) * dims)
    if opset >= 13:
        nodes.append(helper.make_node("Softmax", [logits], ["probs"], axis=1))
    else:  # Softmax before opset 13 flattens from its axis: spell out a channel softmax
        nodes.append(helper.make_node("Exp", [logits], ["exp"]))
        nodes.append(helper.make_node("ReduceSum", ["exp"], ["total"], axes=[1], keepdims=1))
        nodes.append(helper.make_node("Div", ["exp", "total"], ["probs"]))
    out = "probs"
    if not channels_first:
        nodes.append(
            helper.make_node("Transpose", ["probs"], ["probs_t"], perm=[0, *range(2, dims + 2), 1])
        )
        out = "probs_t"
    sp = list(spatial) if spatial is not None else [f"d{i}" for i in range(dims)]
    sp = [f"d{i}" if s is None else s for i, s in enumerate(sp)]
    in_shape = ["batch", channels, *sp] if channels_first else ["batch", *sp, channels]
    graph = helper.make_graph(
        nodes,
        "tiny_unet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    return model
