"""The exception hierarchy of czbuild.

Every error a user can cause derives from :class:`CzbuildError`; the CLI prints its message
on one line and exits with :attr:`CzbuildError.exit_code`. Subclasses also inherit the
builtin exception they refine, so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class CzbuildError(Exception):
    """Root of all czbuild errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class MetadataError(CzbuildError, ValueError):
    """Model metadata violates the format: names the field and the fix.

    ``field`` is the JSON / XML key (``MinOverlap``); ``index`` the item of an array value the
    problem is about, when it is about one (so the recipe layer can name ``min_overlap[1]``).
    """

    exit_code = 2

    def __init__(self, field: str, message: str, *, index: int | None = None) -> None:
        self.field = field
        self.index = index
        super().__init__(f"{field}: {message}" if field else message)


class ArchiveError(CzbuildError, ValueError):
    """A .czann / .czmodel file is unreadable, unsafe or not of the expected form."""

    exit_code = 2


class ModelError(CzbuildError, ValueError):
    """The model cannot be loaded, rebuilt at the requested size, or does not fit the metadata."""

    exit_code = 2


class ImageError(CzbuildError, ValueError):
    """A microscope image cannot be read or does not fit the model (names the file and the fix)."""

    exit_code = 2


class ConversionError(CzbuildError, RuntimeError):
    """ONNX / SavedModel export failed. Never silently replaced by another payload."""

    exit_code = 3


class SpecError(CzbuildError, ValueError):
    """A JSON conversion spec is invalid (names the file and key)."""

    exit_code = 2


class RecipeError(CzbuildError, ValueError):
    """A recipe is invalid. The message names the file, the dotted key and, when known, the line."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class BuildError(CzbuildError, RuntimeError):
    """A build failed (one or more variants), or the build state is locked by another build."""

    exit_code = 1


class VerifyError(CzbuildError, RuntimeError):
    """Verification of an artifact failed."""

    exit_code = 1


class LockMismatchError(CzbuildError, RuntimeError):
    """A rebuilt artifact differs from czbuild.lock."""

    exit_code = 1
