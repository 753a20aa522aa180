"""Save tiny seeded Keras models under the current Keras backend, with their outputs.

czbuild converts under TensorFlow; a ``.keras`` file may have been saved under the JAX or
PyTorch backend. This script writes, for the backend it runs under (``KERAS_BACKEND``):

* ``unet2d.keras`` -- a channels-last 2D U-Net (Conv2D, BatchNormalization, MaxPooling2D,
  UpSampling2D, Conv2DTranspose, Concatenate, softmax head);
* ``unet3d_cf.keras`` -- a channels-first 3D U-Net (``image_data_format`` set to
  ``channels_first``, as PyTorch users often do: input ``(C, Z, H, W)``);

and next to each an ``.npz`` with a seeded input ``x`` and the output ``y`` the *saving*
backend computed (in the model's own layout), so a test can load the file under TensorFlow,
convert it and compare with what the other backend predicted.

The committed JAX fixtures (``tests/data/keras_backends/jax/``) were made with::

    pip install jax jaxlib            # not a czbuild dependency (about 90 MB)
    KERAS_BACKEND=jax python tools/keras_backend_fixtures.py tests/data/keras_backends/jax

``tests/test_keras_backends.py`` runs this script under ``KERAS_BACKEND=torch`` itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _set_norm(layer, rng) -> None:  # type: ignore[no-untyped-def]
    """Non-trivial BatchNormalization statistics (so inference-mode normalisation matters)."""
    n = layer.get_weights()[0].shape[0]
    layer.set_weights(
        [
            rng.uniform(0.5, 2.0, (n,)).astype("float32"),
            rng.normal(0.0, 0.3, (n,)).astype("float32"),
            rng.normal(0.0, 0.3, (n,)).astype("float32"),
            rng.uniform(0.5, 2.0, (n,)).astype("float32"),
        ]
    )


def unet(keras, rank: int, channels_first: bool):  # type: ignore[no-untyped-def]
    """A two-level U-Net of ``rank`` spatial dims, 2 input channels, 3 classes."""
    import numpy as np

    layers = keras.layers
    conv = layers.Conv2D if rank == 2 else layers.Conv3D
    pool = layers.MaxPooling2D if rank == 2 else layers.MaxPooling3D
    up = layers.UpSampling2D if rank == 2 else layers.UpSampling3D
    transposed = layers.Conv2DTranspose if rank == 2 else layers.Conv3DTranspose
    axis = 1 if channels_first else -1
    shape = (2, *(None,) * rank) if channels_first else (*(None,) * rank, 2)
    keras.utils.set_random_seed(7)
    inputs = keras.Input(shape, name="image")
    a = conv(4, 3, padding="same", activation="relu")(inputs)
    norm = layers.BatchNormalization(axis=axis)
    a = norm(a)
    b = conv(6, 3, padding="same", activation="relu")(pool()(a))
    x = layers.Concatenate(axis=axis)([up()(b), transposed(3, 2, strides=2, padding="same")(b), a])
    y = layers.Softmax(axis=axis)(conv(3, 1)(x))
    name = f"unet{rank}d{'_cf' if channels_first else ''}"
    model = keras.Model(inputs, y, name=name)
    _set_norm(norm, np.random.default_rng(0))
    return model


def main(out: Path) -> None:
    import keras
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    backend = keras.backend.backend()
    previous = keras.config.image_data_format()
    for rank, channels_first, spatial in ((2, False, (16, 24)), (3, True, (8, 8, 12))):
        keras.config.set_image_data_format("channels_first" if channels_first else "channels_last")
        try:
            model = unet(keras, rank, channels_first)
        finally:
            keras.config.set_image_data_format(previous)
        x_shape = (1, 2, *spatial) if channels_first else (1, *spatial, 2)
        x = np.random.default_rng(1).random(x_shape, dtype=np.float32)
        y = keras.ops.convert_to_numpy(model(x, training=False))
        model.save(out / f"{model.name}.keras")
        np.savez(out / f"{model.name}.npz", x=x, y=y, backend=np.array(backend))
        print(f"{backend}: wrote {out / model.name}.keras (+ .npz)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: KERAS_BACKEND=jax|torch|tensorflow python {sys.argv[0]} OUT_DIR")
    if not os.environ.get("KERAS_BACKEND"):
        sys.exit("set KERAS_BACKEND (jax, torch or tensorflow)")
    main(Path(sys.argv[1]))
