"""Factory for the `legacy_seed` example, in the spirit of czmodel's seed example.

One Gray16 input channel, three output classes (Background, Interesting Object, Foreground)
with a softmax head. Fully convolutional with one 2x pooling level; the recipe fixes the
tile to 256 (BorderSize 90 needs a tile larger than 180). Seeded initializers.
"""

from __future__ import annotations

import keras
from keras import initializers, layers


def _conv(filters: int, seed: int, kernel_size: int = 3, activation: str = "relu") -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        activation=activation,
        kernel_initializer=initializers.HeNormal(seed=seed),
        bias_initializer=initializers.Zeros(),
    )


def build() -> keras.Model:
    """Return the deterministic 3-class model (input: (None, None, 1), float in [0, 1])."""
    inputs = keras.Input(shape=(None, None, 1), name="image")
    x = _conv(8, seed=21)(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = _conv(8, seed=22)(x)
    x = layers.UpSampling2D(2)(x)
    outputs = _conv(3, seed=23, kernel_size=1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="legacy_seed")
