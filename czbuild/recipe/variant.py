"""The one variant type: :class:`Variant`, a recipe at one sweep point, ready to build.

The recipe layer makes variants (:func:`czbuild.recipe.load_variants`); the build's variant
cache stores them as JSON (:meth:`Variant.to_record`) and reads them back
(:meth:`Variant.from_record`) without pydantic or Hydra; the build, the release layer and the
tests' fakes all use this type. It imports only the plain spec dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.recipe.spec import RecipeSpec
from czbuild.sources.kinds import OnnxFile, TorchFactory, is_import_name

__all__ = ["Variant"]


@dataclass(frozen=True)
class Variant:
    """One artifact to build: a recipe at one sweep point.

    Attributes:
        recipe: Recipe name, e.g. ``"nuclei"``.
        name: ``"nuclei"`` or ``"nuclei@tile=512"`` (sweep keys sorted, joined with ``,``).
        recipe_file: Absolute path of the recipe file.
        project_dir: Absolute project folder; every path in ``spec`` is relative to it (POSIX).
        spec: The frozen, fully resolved spec (a single ``spatial_dims``).
        digest: sha256 of the canonical spec JSON (machine-independent).
        inputs: Absolute paths of the files the artifact is made from: model source (file or
            SavedModel directory, or the factory's .py file), licence, custom-object files.
        output: Output path relative to the build folder:
            ``<recipe>/<variant-dir>/<recipe>.<czann|czmodel>``.
        sweep: The ``(key, value text)`` pairs that name the variant: swept keys and
            command-line overrides that change the spec (empty for the plain variant).
        sweep_values: The same keys with the Python values behind the texts
            (``("tile", 256)``; None for a command-line deletion ``~key``).
        notes: Remarks that are not errors (e.g. a ZEN target newer than the newest release
            czbuild knows), for ``czbuild show``.
    """

    recipe: str
    name: str
    recipe_file: Path
    project_dir: Path
    spec: RecipeSpec
    digest: str
    inputs: tuple[Path, ...]
    output: PurePosixPath
    sweep: tuple[tuple[str, str], ...] = ()
    sweep_values: tuple[tuple[str, Any], ...] = ()
    notes: tuple[str, ...] = ()

    def path(self, relative: str) -> Path:
        """Absolute path of a project-relative spec path."""
        return self.project_dir / PurePosixPath(relative)

    @property
    def model_source(self) -> str | OnnxFile | TorchFactory:
        """The model source for :func:`czbuild.sources.dispatch.open_converter`: for Keras an
        absolute path, or ``"/abs/file.py:function"`` for a factory; an
        :class:`~czbuild.sources.kinds.OnnxFile` or a
        :class:`~czbuild.sources.kinds.TorchFactory` for ONNX and PyTorch."""
        source = self.spec.model
        path = str(self.path(source.path))
        if source.kind == "onnx":
            return OnnxFile(path, channels_first=bool(source.channels_first))
        if source.kind == "torch":
            first = True if source.channels_first is None else source.channels_first
            return TorchFactory(path, str(source.function), channels_first=first)
        return f"{path}:{source.function}" if source.kind == "factory" else path

    @property
    def license_file(self) -> Path | None:
        """Absolute path of the licence file, or None."""
        rel = self.spec.metadata.license
        return self.path(rel) if rel else None

    @property
    def custom_object_files(self) -> tuple[Path | str, ...]:
        """The custom objects: absolute paths of ``.py`` files, ``module:attribute`` names
        as written."""
        return tuple(
            p if is_import_name(p) else self.path(p) for p in self.spec.model.custom_objects
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON form (absolute paths as strings, the spec as :meth:`RecipeSpec.to_plain`)."""
        return {
            "recipe": self.recipe,
            "name": self.name,
            "recipe_file": str(self.recipe_file),
            "project_dir": str(self.project_dir),
            "spec": self.spec.to_plain(),
            "digest": self.digest,
            "inputs": [str(p) for p in self.inputs],
            "output": self.output.as_posix(),
            "sweep": [list(item) for item in self.sweep],
            "sweep_values": [[key, value] for key, value in self.sweep_values],
            "notes": list(self.notes),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Variant:
        """A variant from :meth:`to_record`'s form.

        Raises:
            KeyError, ValueError, TypeError: The record is not a variant's JSON form.
        """
        return cls(
            recipe=record["recipe"],
            name=record["name"],
            recipe_file=Path(record["recipe_file"]),
            project_dir=Path(record["project_dir"]),
            spec=RecipeSpec.from_plain(record["spec"]),
            digest=record["digest"],
            inputs=tuple(Path(p) for p in record["inputs"]),
            output=PurePosixPath(record["output"]),
            sweep=tuple((str(k), str(v)) for k, v in record.get("sweep", ())),
            sweep_values=tuple((str(k), v) for k, v in record.get("sweep_values", ())),
            notes=tuple(record.get("notes", ())),
        )
