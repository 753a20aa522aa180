"""A seeded 2D U-Net factory shared by the benchmarks (and usable by tests and demos).

The default configuration (4 levels, 32 base filters, 1 input channel, 3 classes) has
about 7.8 million parameters; it is fully convolutional, so it runs at any tile size
divisible by ``2 ** levels``.
"""

from __future__ import annotations

from typing import Any


def build_unet(
    *,
    levels: int = 4,
    base_filters: int = 32,
    in_channels: int = 1,
    classes: int = 3,
    tile: int | None = None,
    seed: int = 0,
    keras_module: Any = None,
) -> Any:
    """Build a seeded U-Net with a softmax head.

    Args:
        levels: Number of down-sampling steps (the bottleneck is at ``levels``).
        base_filters: Filters of the first level; doubled at every level.
        in_channels: Input channels.
        classes: Output channels (softmax over them).
        tile: Fixed input height and width, or None for an undefined spatial size.
        seed: Seed for the weight initialisers (Keras global seed).
        keras_module: The Keras to build with (default ``keras``; ``tf_keras`` builds the
            same architecture for tools that need Keras 2, e.g. bench/bench_czmodel.py).

    Returns:
        An uncompiled ``keras.Model`` named ``"unet"``.
    """
    if keras_module is None:
        import keras as keras_module
    keras = keras_module

    keras.utils.set_random_seed(seed)
    layers = keras.layers

    def block(x: Any, filters: int) -> Any:
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        return x

    inputs = keras.Input((tile, tile, in_channels), name="image")
    x = inputs
    skips = []
    for level in range(levels):
        x = block(x, base_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = block(x, base_filters * 2**levels)
    for level in reversed(range(levels)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = block(x, filters)
    outputs = layers.Conv2D(classes, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="unet")


if __name__ == "__main__":  # pragma: no cover
    print(f"{build_unet().count_params():,} parameters")
