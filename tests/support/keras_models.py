"""Tiny seeded Keras U-Nets saved as files (TensorFlow imported on call).

:func:`tiny_unet` has a softmax, sigmoid or linear head; the head also sees the raw input
with a strong weight, so its output follows the image (a sigmoid is high on bright pixels,
which the verifier's class-order check needs to decide anything).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_tiny_unet", "tiny_unet"]


def tiny_unet(
    head: str = "softmax", *, classes: int = 2, channels: int = 1, depth: int = 2, seed: int = 0
) -> Any:
    """A U-Net of ``depth`` poolings (down-sampling factor ``2**depth``), 3 x 3 convolutions."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((None, None, channels))
    skips = []
    for _ in range(depth):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    for skip in reversed(skips):
        x = keras.layers.UpSampling2D(2)(x)
        x = keras.layers.Concatenate()([x, skip])
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.Concatenate()([x, inputs])
    n = classes if head == "softmax" else 1
    activation = {"softmax": "softmax", "sigmoid": "sigmoid", "linear": None}[head]
    outputs = keras.layers.Conv2D(n, 1, activation=activation, name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("head").get_weights()
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0.0, 0.1, kernel.shape).astype("float32")
    kernel[0, 0, -channels:, -1] = 12.0  # the last channel follows the input
    bias[-1] = -6.0
    model.get_layer("head").set_weights([kernel, bias])
    return model


def save_tiny_unet(path: Path, head: str = "softmax", **kwargs: Any) -> Path:
    """Save :func:`tiny_unet` to ``path`` (``.keras`` / ``.h5``, or a SavedModel folder)."""
    model = tiny_unet(head, **kwargs)
    if path.suffix in (".keras", ".h5"):
        model.save(path)
    else:
        model.export(str(path), verbose=False)
    return path
