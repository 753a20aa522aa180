"""Progress output of a build: what starts, waits, works and finishes, and a summary.

Used by both ``czbuild build`` and plain ``doit`` (via ``DOIT_CONFIG["reporter"]``). doit's
thread runner calls the reporter from several threads, so every write is one locked line.

A variant says ``queued`` when doit has handed it to a thread but every conversion worker is
busy, and ``start`` when a worker really takes it; its time is the run time from there, not
the time it waited. The worker reports its phases (``loading model``, ``converting``,
``verifying: fidelity``, ``verifying: tiling``) over the worker protocol; a phase that lasts
longer than :attr:`BuildReporter.phase_after` seconds gets a line, repeated every
:attr:`BuildReporter.repeat_every` seconds while it lasts, so a long build is never silent.
Warnings of a variant's verification are listed under its ``built`` line. A Ray build
(:mod:`czbuild.builder.ray_executor`) also says where each variant runs and, for a variant
that waits, the cluster's queue.

Example::

    start    nuclei@tile=256
    queued   nuclei@tile=512
             nuclei@tile=256: converting (5 s)
    built    nuclei@tile=256  (7.41 s)
             warning: tiling.seams (per-tile statistics 0.17): per-tile statistics ...
    start    nuclei@tile=512
    FAILED   nuclei@tile=1000  (0.12 s)
             recipes/nuclei.yaml: tile: 1000 is not divisible by 16 ...
    czbuild: 1 built, 6 up to date, 1 failed (8 variants, 4.02 s)
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
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
        phase_after: Seconds a phase lasts before it gets a line (0: never).
        repeat_every: Seconds between repeated lines of the same phase.
    """

    desc = "czbuild progress lines"
    phase_after = 5.0
    repeat_every = 30.0

    def __init__(
        self,
        outstream: TextIO | None = None,
        options: dict[str, Any] | None = None,
        *,
        verbose: bool = False,
        summary: Summary | None = None,
        phase_after: float | None = None,
        repeat_every: float | None = None,
    ) -> None:
        self.out = outstream or sys.stdout
        self.verbose = verbose
        self.summary = summary or Summary()
        self.runtime_errors: list[str] = []
        if phase_after is not None:
            self.phase_after = phase_after
        if repeat_every is not None:
            self.repeat_every = repeat_every
        self._handed: dict[str, float] = {}  # task name -> when doit handed it to a thread
        self._running: dict[str, _Running] = {}  # variant -> its run, from the worker's start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

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

    # --- events from the build session (worker pool) ------------------------------------

    def event(self, variant: str, kind: str, text: str = "") -> None:
        """A variant's progress: ``queued`` (text: the queue it waits in, if the executor
        knows), ``start``, ``phase`` (with the phase's name) or ``note`` (a line now: where
        it runs, a node refused).

        Called from the build threads (:class:`czbuild.builder.session.BuildSession`).
        """
        now = time.perf_counter()
        if kind == "queued":
            self._write(f"queued   {variant}" + (f"  ({text})" if text else ""))
        elif kind == "note":
            self._write(f"         {variant}: {text}")
        elif kind == "start":
            with self._lock:
                self._running[variant] = _Running(started=now, phase="running", since=now)
            self._write(f"start    {variant}")
        elif kind == "phase":
            with self._lock:
                run = self._running.get(variant)
                if run is None:
                    run = self._running[variant] = _Running(started=now, phase=text, since=now)
                run.phase, run.since, run.shown = text, now, None

    def _run_seconds(self, task: Any, variant: str | None) -> float:
        """Run time of a finished task: from the worker's start, else from doit's hand-over."""
        now = time.perf_counter()
        with self._lock:
            run = self._running.pop(variant, None) if variant else None
            handed = self._handed.pop(task.name, now)
        return now - (run.started if run is not None else handed)

    def _tick(self) -> None:
        """Print a line for every phase that has lasted longer than :attr:`phase_after`."""
        step = max(0.05, min(1.0, self.phase_after / 5))
        while not self._stop.wait(step):
            now = time.perf_counter()
            lines = []
            with self._lock:
                for variant, run in sorted(self._running.items()):
                    lasted = now - run.since
                    if lasted < self.phase_after:
                        continue
                    if run.shown is not None and now - run.shown < self.repeat_every:
                        continue
                    run.shown = now
                    lines.append(f"         {variant}: {run.phase} ({lasted:.0f} s)")
            for line in lines:
                self._write(line)

    # --- doit reporter interface ----------------------------------------------------------

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        self.summary.started = time.perf_counter()
        if not self.summary.planned:
            self.summary.planned = _count_selected_builds(tasks, selected_tasks)
        for task in (tasks or {}).values():  # let the build session report progress to us
            session = (getattr(task, "meta", None) or {}).get("czbuild_session")
            if session is not None and getattr(session, "listener", None) is None:
                session.listener = self.event
        if self.phase_after > 0 and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="czbuild-ticker", daemon=True)
            self._ticker.start()

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        name = self._variant(task)
        if name is None:
            return
        with self._lock:
            self._handed[task.name] = time.perf_counter()
        meta = getattr(task, "meta", None) or {}
        if meta.get("czbuild_session") is None:  # no progress events: doit's start is ours
            self.event(name, "start")

    def add_success(self, task: Any) -> None:
        name = self._variant(task)
        if name is None:
            return
        seconds = self._run_seconds(task, name)
        values = task.values or {}
        if values.get("czbuild") == "up-to-date":  # built meanwhile by another run
            self.summary.up_to_date.append(name)
            self._write(f"current  {name}  (built by another run)")
            return
        self.summary.built.append(name)
        lines = [f"built    {name}  ({seconds:.2f} s)"]
        lines += [f"         warning: {w}" for w in values.get("warnings") or ()]
        self._write("\n".join(lines))

    def add_failure(self, task: Any, fail: Any) -> None:
        variant = self._variant(task)
        if variant is None and type(fail).__name__ == "UnmetDependency":
            return  # the "build" group task: its failed sub-tasks are already reported
        name = variant or task.name
        seconds = self._run_seconds(task, variant)
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
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
            self._ticker = None
        self.summary.seconds = time.perf_counter() - self.summary.started
        self._write(self.summary.line())


@dataclass
class _Running:
    """A variant a worker is running: since when, its current phase and its last line."""

    started: float
    phase: str
    since: float
    shown: float | None = None


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
