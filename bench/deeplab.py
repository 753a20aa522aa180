"""A seeded DeepLabV3-sized segmenter for the verification benchmarks (built by hand).

A ResNet-style backbone (stem, four stages of two residual blocks with 64/128/256/448
filters, output stride 16: the last stage keeps the resolution with dilation 2) and an ASPP
head (1x1, 3x3 with dilations 6, 12 and 18, and an image-level branch: global average
pooling, 1x1 conv, broadcast back), a 1x1 projection, bilinear up-sampling by 16 and a softmax
over the classes. RGB in, about 13.5 million parameters, fully convolutional (tiles divisible
by 16). The global pooling branch gives every output pixel the whole tile as context: tiled
inference of such a model always shows seams, which is what the verifier must say clearly.
"""

from __future__ import annotations

from typing import Any


def build_deeplab(*, classes: int = 3, in_channels: int = 3, seed: int = 0) -> Any:
    """Build the seeded model (undefined H/W).

    Args:
        classes: Output channels (softmax over them).
        in_channels: Input channels (3: RGB).
        seed: Keras global seed for the initialisers.

    Returns:
        An uncompiled ``keras.Model`` named ``"deeplab"``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers

    def conv(x: Any, filters: int, kernel: int, stride: int = 1, dilation: int = 1) -> Any:
        x = layers.Conv2D(
            filters, kernel, strides=stride, dilation_rate=dilation, padding="same", use_bias=False
        )(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    def residual(x: Any, filters: int, stride: int, dilation: int) -> Any:
        shortcut = x
        y = conv(x, filters, 3, stride, dilation)
        y = layers.Conv2D(filters, 3, dilation_rate=dilation, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if stride != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
            shortcut = layers.BatchNormalization()(shortcut)
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input((None, None, in_channels), name="image")
    x = conv(inputs, 64, 7, stride=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for filters, stride, dilation in ((64, 1, 1), (128, 2, 1), (256, 2, 1), (448, 1, 2)):
        x = residual(x, filters, stride, dilation)
        x = residual(x, filters, 1, dilation)
    branches = [conv(x, 256, 1)] + [conv(x, 256, 3, dilation=d) for d in (6, 12, 18)]
    pooled = layers.GlobalAveragePooling2D(keepdims=True)(x)
    pooled = conv(pooled, 256, 1)
    # broadcast the image-level features over the feature map (a resize of a 1x1 map)
    branches.append(layers.Lambda(lambda t: t[0] * 0.0 + t[1])([branches[0], pooled]))
    x = conv(layers.Concatenate()(branches), 256, 1)
    x = layers.Conv2D(classes, 1)(x)
    x = layers.UpSampling2D(16, interpolation="bilinear")(x)
    return keras.Model(inputs, layers.Softmax()(x), name="deeplab")


if __name__ == "__main__":
    print(build_deeplab().count_params())
