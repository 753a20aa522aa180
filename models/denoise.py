"""Factory for the `denoise` example: a tiny seeded regression (image-to-image) model.

One channel in, one channel out, sigmoid output in [0, 1] as CZANN Regression requires.
No pooling, so any tile size works. Seeded initializers.
"""

from __future__ import annotations

import keras
from keras import initializers, layers


def build() -> keras.Model:
    """Return the deterministic denoiser (input and output: (None, None, 1))."""
    inputs = keras.Input(shape=(None, None, 1), name="image")
    x = layers.Conv2D(
        8,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=initializers.GlorotUniform(seed=31),
        bias_initializer=initializers.Zeros(),
    )(inputs)
    outputs = layers.Conv2D(
        1,
        3,
        padding="same",
        activation="sigmoid",
        kernel_initializer=initializers.GlorotUniform(seed=32),
        bias_initializer=initializers.Zeros(),
    )(x)
    return keras.Model(inputs, outputs, name="denoise")
