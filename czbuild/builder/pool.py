"""Run conversion jobs: in worker subprocesses (the default) or in this process.

Why subprocesses: the build process itself never imports TensorFlow, so a no-op build stays
fast, TensorFlow's state is never forked, and a crashing or out-of-memory conversion kills a
worker, not the build. Each worker is a fresh ``python -m czbuild.builder.worker`` (no fork).

Scheduling: :meth:`WorkerPool.run` is called from doit's task threads (``-j N`` runs doit
with N threads). Jobs carry a *group* (the model they convert); a group sticks to the worker
that first served it, so all variants of a sweep share one model load and one conversion
there, and at most ``size`` workers run at once. Workers never write the same file: each job
has its own output path, and stamps are written by the parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

from czbuild.builder.jobs import DEFAULT_BACKEND, load_backend, run_job
from czbuild.builder.protocol import Job, JobResult, Progress, receive, send

#: ``events(kind, text)``: ``("queued", "")`` when the job must wait for a worker (the Ray
#: executor puts the cluster's queue in the text), ``("start", "")`` when a worker takes it,
#: ``("phase", name)`` for each phase it reports, ``("note", line)`` for a line to show at
#: once (the Ray executor: the node a job runs on, a node refused).
Events = Callable[[str, str], None]


def _ignore(kind: str, text: str) -> None:
    pass


class Executor(Protocol):
    """Something that turns a :class:`Job` into a :class:`JobResult`."""

    def run(self, job: Job, group: Hashable, events: Events | None = None) -> JobResult: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Run jobs in this process (imports TensorFlow here). For tests and ``--in-process``.

    Args:
        backend: ``module:function`` of the conversion backend, or the function itself.
    """

    def __init__(self, backend: Any = DEFAULT_BACKEND) -> None:
        self._backend = load_backend(backend) if isinstance(backend, str) else backend
        self._cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.jobs_run = 0

    def run(self, job: Job, group: Hashable, events: Events | None = None) -> JobResult:
        events = events or _ignore
        # one conversion at a time: TensorFlow/tf2onnx are not thread-safe
        if not self._lock.acquire(blocking=False):
            events("queued", "")
            self._lock.acquire()
        try:
            self.jobs_run += 1
            events("start", "")
            return run_job(
                self._backend, job, self._cache, on_progress=lambda p: events("phase", p)
            )
        finally:
            self._lock.release()

    def close(self) -> None:
        self._cache.clear()


# The folder czbuild was imported from: workers must run the same czbuild code as the parent
# (also from a source checkout that is not installed).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    # The worker's CPU share: onnxruntime in the verifier uses this many threads.
    env.setdefault("CZBUILD_THREADS", str(threads))  # formats.runner.THREADS_ENV
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PACKAGE_ROOT not in paths:
        paths.insert(0, _PACKAGE_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Worker:
    def __init__(self, index: int, backend: str, log_path: Path | None, threads: int = 1) -> None:
        self.index = index
        self.busy = False
        self.jobs_run = 0
        self.log_path = log_path
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr: Any = open(log_path, "wb")  # noqa: SIM115 - closed below
        else:
            stderr = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "czbuild.builder.worker",
                    "--backend",
                    backend,
                    "--parent",
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_worker_env(threads),
            )
        finally:
            if log_path is not None:
                stderr.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, job: Job, events: Events = _ignore) -> JobResult:
        self.jobs_run += 1
        try:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            send(self.proc.stdin, job)
            result = receive(self.proc.stdout)
            while isinstance(result, Progress):
                events("phase", result.phase)
                result = receive(self.proc.stdout)
        except (EOFError, BrokenPipeError, OSError):
            code = self.proc.wait()
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            hint = " (out of memory?)" if code == -9 else ""
            log = f"; see {self.log_path}" if self.log_path else ""
            return JobResult(
                ok=False, error=f"conversion worker {how}{hint}{log}", error_type="WorkerDied"
            )
        if not isinstance(result, JobResult):
            return JobResult(
                ok=False,
                error="conversion worker sent an invalid reply",
                error_type="WorkerProtocolError",
            )
        return result

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.close(timeout=5.0)


class WorkerPool:
    """At most ``size`` worker subprocesses, with model-group affinity (module docstring).

    Args:
        size: Maximum number of workers (the ``-j`` value).
        backend: ``module:function`` run by the workers for each job.
        log_dir: Workers' stderr goes to ``log_dir/worker-<i>.log`` (None: discarded).
    """

    def __init__(
        self, size: int = 1, backend: str = DEFAULT_BACKEND, log_dir: Path | None = None
    ) -> None:
        if size < 1:
            raise ValueError("worker pool size must be >= 1")
        self.size = size
        self.backend = backend
        self.log_dir = log_dir
        self._workers: list[_Worker] = []
        self._affinity: dict[Hashable, _Worker] = {}
        # worker index -> when it last took a new group (see _idle_worker)
        self._new_group_turn: dict[int, int] = {}
        self._turns = 0
        self._cond = threading.Condition()
        self._spawned = 0
        self._closed = False

    def run(self, job: Job, group: Hashable, events: Events | None = None) -> JobResult:
        """Run ``job`` on the worker of ``group`` (blocking; thread-safe).

        ``events`` hears ``queued`` if the job has to wait for a worker, ``start`` when one
        takes it, and the phases the worker reports.
        """
        events = events or _ignore
        worker = self._checkout(group, lambda: events("queued", ""))
        events("start", "")
        if worker.jobs_run == 0:
            events("phase", "starting a worker process")
        try:
            return worker.run(job, events)
        finally:
            with self._cond:
                worker.busy = False
                if not worker.alive:
                    self._forget(worker)
                self._cond.notify_all()

    def _checkout(self, group: Hashable, on_wait: Callable[[], None]) -> _Worker:
        waited = False
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("worker pool is closed")
                pinned = self._affinity.get(group)
                if pinned is not None and pinned.alive:
                    if not pinned.busy:
                        pinned.busy = True
                        return pinned
                else:
                    worker = self._idle_worker() or self._spawn()
                    if worker is not None:
                        self._affinity[group] = worker
                        self._turns += 1
                        self._new_group_turn[worker.index] = self._turns
                        worker.busy = True
                        return worker
                if not waited:
                    waited = True
                    on_wait()
                self._cond.wait()

    def _idle_worker(self) -> _Worker | None:
        idle = [w for w in self._workers if not w.busy and w.alive]
        if not idle:
            return None
        # Prefer a worker that no group is pinned to any more, then the one that took a new
        # group longest ago: the task order (tasks.order_variants) deals model groups to the
        # workers in turn, and a worker that just took a model has that model's next variants
        # coming. (Lowest index first made one worker alternate between two new models while
        # the other sat idle, loading each model again for every variant.)
        pinned = set(map(id, self._affinity.values()))
        idle.sort(key=lambda w: (id(w) in pinned, self._new_group_turn.get(w.index, 0), w.index))
        return idle[0]

    def _spawn(self) -> _Worker | None:
        live = [w for w in self._workers if w.alive]
        if len(live) >= self.size:
            return None
        log = self.log_dir / f"worker-{self._spawned}.log" if self.log_dir else None
        from czbuild.formats.runner import cpu_share

        threads = max(1, cpu_share() // self.size)
        worker = _Worker(self._spawned, self.backend, log, threads)
        self._spawned += 1
        self._workers.append(worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        self._workers = [w for w in self._workers if w is not worker]
        for key in [k for k, w in self._affinity.items() if w is worker]:
            del self._affinity[key]

    def close(self) -> None:
        """Stop all workers (they finish their current job first)."""
        with self._cond:
            self._closed = True
            workers, self._workers = self._workers, []
            self._affinity.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.close()

    def terminate(self) -> None:
        """Kill all workers now (Ctrl-C)."""
        with self._cond:
            self._closed = True
            workers, self._workers = self._workers, []
            self._cond.notify_all()
        for worker in workers:
            worker.terminate()
