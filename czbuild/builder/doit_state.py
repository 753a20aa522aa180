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
    """doit's sqlite3 backend that survives a state file it cannot open or write.

    It also reads the whole table with one query the first time doit asks for a task's
    record, instead of one query per task (doit asks for every task of a no-op build).
    """

    desc = "doit's sqlite3 state; a file it cannot open or write is only noted (czbuild)"
    _rows: dict[str, Any] | None = None

    def _get_task_data(self, task_id: str) -> Any:
        if self._rows is None:
            try:
                cursor = self._conn.execute("select task_id, task_data from doit")
                self._rows = {row["task_id"]: row["task_data"] for row in cursor}
            except sqlite3.Error:
                return super()._get_task_data(task_id)
        # each record is handed out once: doit keeps (and changes) it in its own cache
        return self._rows.pop(task_id, None) or {}

    def in_(self, task_id: str) -> bool:
        if self._rows is not None and task_id in self._rows:
            return True
        return bool(super().in_(task_id))

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
