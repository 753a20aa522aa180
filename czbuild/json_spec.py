"""JSON conversion specs (format §4): the legacy flat form and the CZANN nested form.

:func:`read_json_spec` reads either form into a :class:`JsonSpec`; the parsing itself lives
with the metadata classes (:func:`czbuild.model_metadata.read_model_spec`), the document
primitives in :mod:`czbuild.json_document`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from czbuild.json_document import read_json_object
from czbuild.model_metadata import ModelSpec, read_model_spec

__all__ = ["JsonSpec", "read_json_object", "read_json_spec"]


@dataclass(frozen=True)
class JsonSpec:
    """A parsed JSON conversion spec; every path is absolute.

    Attributes:
        path: The spec file.
        form: ``"legacy"`` (flat) or ``"czann"`` (nested ``ModelMetadata``).
        model_spec: The model (a path string or factory) with metadata and licence.
        test_image_file: ``TestImageFile`` if given (not embedded; not used for conversion).
    """

    path: Path
    form: str
    model_spec: ModelSpec
    test_image_file: Path | None = None


def read_json_spec(spec_path: str | os.PathLike[str]) -> JsonSpec:
    """Parse a JSON conversion spec of either form (format §4).

    Relative paths (``ModelPath``, ``LicenseFile``, ``TestImageFile``, a string
    ``ModelMetadata``) are resolved against the spec file's folder; ``\\`` separators are
    accepted; unknown keys are logged as warnings; ``ModelFile`` is accepted for
    ``ModelPath``.

    Raises:
        SpecError: Names the file and the key, and says how to fix it.
    """
    path = Path(spec_path)
    form, model_spec, test_image = read_model_spec(path)
    return JsonSpec(path=path, form=form, model_spec=model_spec, test_image_file=test_image)
