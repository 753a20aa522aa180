"""Factory for the `nuclei` example: a tiny seeded U-Net-style segmentation model.

One grey input channel, two output classes (Background, Nucleus) with a softmax head. Fully
convolutional with one 2x pooling level, so any even tile size works (the recipe sweeps
128, 256 and 512). Every initializer is seeded: two calls give identical weights.
"""

from __future__ import annotations

import keras
from keras import initializers, layers


def _conv(filters: int, seed: int, **kwargs) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kwargs.pop("kernel_size", 3),
        padding="same",
        kernel_initializer=initializers.GlorotUniform(seed=seed),
        bias_initializer=initializers.Zeros(),
        **kwargs,
    )


def build() -> keras.Model:
    """Return the untrained-but-deterministic nuclei model (input: (None, None, 1))."""
    inputs = keras.Input(shape=(None, None, 1), name="image")
    skip = _conv(8, seed=11, activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(skip)
    x = _conv(16, seed=12, activation="relu")(x)
    x = layers.UpSampling2D(2)(x)
    x = layers.Concatenate()([x, skip])
    x = _conv(8, seed=13, activation="relu")(x)
    outputs = _conv(2, seed=14, kernel_size=1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="nuclei")
