"""Progress output of a build: one line per task start/finish and a summary.

Used by both ``czbuild build`` and plain ``doit`` (via ``DOIT_CONFIG["reporter"]``). doit's
thread runner calls the reporter from several threads, so every write is one locked line.

Example::

    start    nuclei@tile=256
    built    nuclei@tile=256  (3.41 s)
    FAILED   nuclei@tile=1000  (0.12 s)
             recipes/nuclei.yaml: tile: 1000 is not divisible by 16 ...
    czbuild: 1 built, 6 up to date, 1 failed (8 variants, 4.02 s)
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

_BUILD_PREFIX = "build:"


class Summary:
    """Counts of one run, filled by :class:`BuildReporter`."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.up_to_date: list[str] = []
        self.failed: dict[str, str] = {}
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.planned = 0  # number of variants selected, when known

    @property
    def total(self) -> int:
        return len(self.built) + len(self.up_to_date) + len(self.failed)

    @property
    def not_run(self) -> int:
        return max(0, self.planned - self.total)

    def line(self) -> str:
        skipped = f", {self.not_run} not run" if self.not_run else ""
        return (
            f"czbuild: {len(self.built)} built, {len(self.up_to_date)} up to date, "
            f"{len(self.failed)} failed{skipped} "
            f"({_plural(max(self.planned, self.total), 'variant')}, {self.seconds:.2f} s)"
        )


class BuildReporter:
    """A doit reporter (see the module docstring).

    Args:
        outstream: Where lines go (doit passes its output stream).
        options: doit reporter options (unused), or None.
        verbose: Also list up-to-date variants.
        summary: Collects counts; a fresh one by default.
    """

    desc = "czbuild progress lines"

    def __init__(
        self,
        outstream: TextIO | None = None,
        options: dict[str, Any] | None = None,
        *,
        verbose: bool = False,
        summary: Summary | None = None,
    ) -> None:
        self.out = outstream or sys.stdout
        self.verbose = verbose
        self.summary = summary or Summary()
        self.runtime_errors: list[str] = []
        self._starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    @staticmethod
    def _variant(task: Any) -> str | None:
        """The variant name of a ``build:*`` task (None for other tasks)."""
        name = task.name
        if not name.startswith(_BUILD_PREFIX):
            return None
        meta = getattr(task, "meta", None) or {}
        return meta.get("czbuild_variant") or name[len(_BUILD_PREFIX) :]

    # --- doit reporter interface ----------------------------------------------------------

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        self.summary.started = time.perf_counter()
        if not self.summary.planned:
            self.summary.planned = _count_selected_builds(tasks, selected_tasks)

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        name = self._variant(task)
        if name is None:
            return
        with self._lock:
            self._starts[task.name] = time.perf_counter()
        self._write(f"start    {name}")

    def add_success(self, task: Any) -> None:
        name = self._variant(task)
        if name is None:
            return
        seconds = time.perf_counter() - self._starts.get(task.name, time.perf_counter())
        if (task.values or {}).get("czbuild") == "up-to-date":  # built meanwhile by another run
            self.summary.up_to_date.append(name)
            self._write(f"current  {name}  (built by another run)")
            return
        self.summary.built.append(name)
        self._write(f"built    {name}  ({seconds:.2f} s)")

    def add_failure(self, task: Any, fail: Any) -> None:
        variant = self._variant(task)
        if variant is None and type(fail).__name__ == "UnmetDependency":
            return  # the "build" group task: its failed sub-tasks are already reported
        name = variant or task.name
        seconds = time.perf_counter() - self._starts.get(task.name, time.perf_counter())
        message = getattr(fail, "message", None) or str(fail)
        self.summary.failed[name] = message
        lines = str(message).rstrip().splitlines() or ["(no message)"]
        self._write(
            f"FAILED   {name}  ({seconds:.2f} s)\n" + "\n".join(f"         {ln}" for ln in lines)
        )

    def skip_uptodate(self, task: Any) -> None:
        name = self._variant(task)
        if name is None:
            return
        self.summary.up_to_date.append(name)
        if self.verbose:
            self._write(f"current  {name}")

    def skip_ignore(self, task: Any) -> None:
        self._write(f"ignored  {task.name}")

    def cleanup_error(self, exception: Any) -> None:
        self._write(f"czbuild: cleanup error: {exception.get_msg()}")

    def runtime_error(self, msg: str) -> None:
        self.runtime_errors.append(msg)
        self._write(f"czbuild: error: {msg}")

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        self.summary.seconds = time.perf_counter() - self.summary.started
        self._write(self.summary.line())


def _count_selected_builds(tasks: Any, selected: Any) -> int:
    """Number of ``build:*`` tasks the selection reaches through task dependencies."""
    seen: set[str] = set()
    todo = list(selected or [])
    while todo:
        name = todo.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        todo.extend(getattr(tasks[name], "task_dep", []) or [])
    return sum(1 for name in seen if name.startswith(_BUILD_PREFIX))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
