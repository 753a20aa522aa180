"""Messages between the build process and its conversion workers.

The parent (which never imports TensorFlow) sends :class:`Job` objects to a worker process
over the worker's stdin and reads back, from its stdout, any number of :class:`Progress`
frames (the phases the job goes through, for the build console) and then one
:class:`JobResult`. Frames are
an 8-byte big-endian length followed by a pickle; both ends are czbuild, started by the same
user, so pickle is safe here and carries the frozen Variant (with its pydantic spec) as is.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from typing import IO, Any

from czbuild.recipe.variant import Variant

_HEADER = struct.Struct(">Q")


@dataclass(frozen=True)
class Job:
    """Build one variant into ``out_path``.

    Attributes:
        variant: The :class:`czbuild.recipe.Variant` (or a test double).
        out_path: Absolute final path of the artifact; the converter writes it atomically.
        source_key: Identifies the model the variant converts (input paths and content
            hashes); jobs with the same key share one loaded model in a worker.
        verify: Verify the artifact before it gets its final name (the recipe's ``verify:``
            settings); False for ``--no-verify``.
        reuse: Take the payload from the payload cache when it has one (False for
            ``--force``: convert again).
    """

    variant: Variant
    out_path: str
    source_key: tuple = ()
    verify: bool = False
    reuse: bool = True


@dataclass(frozen=True)
class JobResult:
    """Outcome of a :class:`Job`.

    Attributes:
        ok: The artifact was written.
        sha256: sha256 of the artifact (when ok).
        members: ZIP member name -> sha256 (when ok).
        error: One-line error message (when not ok), from the recipe/convert layer.
        error_type: Class name of the exception.
        traceback: Full traceback text, shown with ``--debug``.
        seconds: Time spent in the worker.
        verification: The verification record (see :mod:`czbuild.builder.verification`):
            when ok and verified, and when the job failed verification; else None.
        inputs: ``(role, absolute path)`` of the files the worker recorded while loading
            the model (:mod:`czbuild.builder.reads`): files read, local modules imported.
    """

    ok: bool
    sha256: str = ""
    members: dict[str, str] = field(default_factory=dict)
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    seconds: float = 0.0
    verification: dict[str, Any] | None = None
    inputs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Progress:
    """A phase the worker entered while running a job (sent before the job's result).

    Attributes:
        phase: A few words: ``loading model``, ``converting``, ``verifying: fidelity`` ...
    """

    phase: str


def send(stream: IO[bytes], message: Any) -> None:
    """Write one framed message and flush."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """Read one framed message.

    Raises:
        EOFError: The other end closed the stream (or died) before a full frame arrived.
    """
    header = _read_exact(stream, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    return pickle.loads(_read_exact(stream, size))


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("stream closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
