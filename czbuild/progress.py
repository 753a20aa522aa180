"""Phase announcements from deep inside long work, for whoever is listening.

A conversion job runs for seconds to minutes inside a worker process; the build console wants
to say what it is doing (``converting``, ``verifying: fidelity``). The code doing the work
calls :func:`phase`; the code that runs the job installs a listener with :func:`reporting`
(the worker sends each phase to the build process as a ``Progress`` frame). Without a
listener :func:`phase` does nothing, so library users see no output. Imports nothing of
czbuild: every layer may announce phases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["phase", "reporting"]

Listener = Callable[[str], None]
_listener: ContextVar[Listener | None] = ContextVar("czbuild_progress", default=None)


def phase(name: str) -> None:
    """Announce that the current job enters the phase ``name`` (a few words, lower case).

    A listener that fails never disturbs the work: its error is ignored.
    """
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(name)
    except Exception:
        pass


@contextlib.contextmanager
def reporting(listener: Listener | None) -> Iterator[None]:
    """Send the phases announced inside the block (in this thread or context) to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
