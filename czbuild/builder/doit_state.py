"""doit's own state file (``<out>/.czbuild/doit.sqlite3``), which a build can do without.

czbuild decides what is up to date from its stamps, never from doit's records (see
:mod:`czbuild.builder.tasks`). doit still opens its state database when a run starts and
writes it when the run ends; on a full disk or a read-only folder that raises
``sqlite3.OperationalError`` inside doit, which prints a traceback and abandons the run. This
backend keeps the run going instead: a database that cannot be opened is replaced by one in
memory, one that cannot be written is dropped, and each problem is kept in :data:`problems`
for the build to report as a one-line note.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from doit.dependency import DatabaseException, SqliteDB

#: The name ``czbuild build`` registers this backend under (doit's ``BACKEND`` plugins).
NAME = "czbuild-sqlite3"
LOCATION = "czbuild.builder.doit_state:StateDB"

_problems: list[str] = []
_lock = threading.Lock()


def take_problems() -> list[str]:
    """The problems recorded since the last call (and forget them)."""
    with _lock:
        found = list(_problems)
        _problems.clear()
        return found


def _note(message: str) -> None:
    with _lock:
        _problems.append(message)


class StateDB(SqliteDB):
    """doit's sqlite3 backend that survives a state file it cannot open or write."""

    desc = "doit's sqlite3 state; a file it cannot open or write is only noted (czbuild)"

    def _sqlite3(self, name: str) -> Any:
        try:
            return super()._sqlite3(name)
        except (sqlite3.Error, DatabaseException, OSError) as exc:
            _note(f"cannot open doit's state file {name} ({_reason(exc)}); kept in memory")
            return super()._sqlite3(":memory:")

    def dump(self) -> None:
        try:
            super().dump()
        except (sqlite3.Error, OSError) as exc:
            _note(f"cannot write doit's state file {self.name} ({_reason(exc)})")
            try:
                self._conn.close()
            except sqlite3.Error:
                pass


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200]
