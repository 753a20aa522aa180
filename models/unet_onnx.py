"""Writes the bundled ONNX example models: ``cells.onnx`` (2D) and ``volume.onnx`` (3D).

Run ``python models/unet_onnx.py`` to regenerate them (only ``onnx`` and ``numpy`` needed;
the files are committed so that ``czbuild build`` needs neither this script nor PyTorch).
Each is a tiny seeded U-Net (Conv, ReLU, MaxPool, nearest Resize, Concat, a softmax over the
channels), channels-first as a PyTorch export would be: the recipes say
``channels_first: true``. ``cells.onnx`` uses opset 13 (czbuild converts it to the target's
opset 18); ``volume.onnx`` uses opset 12, the opset of CZANN 2.0.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def unet(
    *, dims: int, opset: int, seed: int, channels: int = 1, classes: int = 2
) -> onnx.ModelProto:
    """A two-level U-Net with free batch and spatial dims, NCHW (NCDHW for 3D)."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    width = 4

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv(name: str, x: str, cin: int, cout: int, k: int = 3) -> str:
        w = const(
            f"{name}.weight", rng.normal(0, np.sqrt(2 / (cin * k**dims)), (cout, cin) + (k,) * dims)
        )
        b = const(f"{name}.bias", np.zeros(cout))
        nodes.append(
            helper.make_node(
                "Conv", [x, w, b], [name], pads=[k // 2] * (2 * dims), kernel_shape=[k] * dims
            )
        )
        return name

    def relu(x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{x}.relu"]))
        return f"{x}.relu"

    e1 = relu(conv("enc1", "image", channels, width))
    nodes.append(
        helper.make_node("MaxPool", [e1], ["pool"], kernel_shape=[2] * dims, strides=[2] * dims)
    )
    e2 = relu(conv("enc2", "pool", width, 2 * width))
    roi = const("roi", np.zeros((0,)))
    scales = const("scales", np.array([1, 1] + [2] * dims))
    nodes.append(helper.make_node("Resize", [e2, roi, scales], ["up"], mode="nearest"))
    nodes.append(helper.make_node("Concat", ["up", e1], ["cat"], axis=1))
    logits = conv("head", relu(conv("dec1", "cat", 3 * width, width)), width, classes, k=1)
    if opset >= 13:
        nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    else:  # before opset 13 Softmax flattens from its axis: a channel softmax spelled out
        nodes.append(helper.make_node("Exp", [logits], ["exp"]))
        nodes.append(helper.make_node("ReduceSum", ["exp"], ["total"], axes=[1], keepdims=1))
        nodes.append(helper.make_node("Div", ["exp", "total"], ["probabilities"]))
    spatial = [f"d{i}" for i in range(dims)]
    graph = helper.make_graph(
        nodes,
        "unet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, *spatial])],
        [
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, ["batch", classes, *spatial]
            )
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="unet_onnx.py"
    )
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    here = Path(__file__).resolve().parent
    onnx.save(unet(dims=2, opset=13, seed=11), here / "cells.onnx")
    onnx.save(unet(dims=3, opset=12, seed=12), here / "volume.onnx")


if __name__ == "__main__":
    main()
