"""A conversion worker: ``python -m czbuild.builder.worker --backend MODULE:FUNCTION``.

Started by :class:`czbuild.builder.pool.WorkerPool`. It reads :class:`~czbuild.builder.protocol.Job`
frames from stdin, runs the backend for each (which imports TensorFlow on first use and keeps
the loaded model between jobs of the same model), and writes
:class:`~czbuild.builder.protocol.JobResult` frames to the original stdout, each job's result
preceded by a :class:`~czbuild.builder.protocol.Progress` frame per phase it announced.
Anything else the libraries print goes to stderr, which the pool sends to a log file.

The worker ignores SIGINT (the parent decides what Ctrl-C does and terminates workers) and
exits on its own when the parent goes away: on EOF on stdin, and when the watchdog thread
sees the parent process gone (it checks twice a second, but needs the GIL: a native
TensorFlow call that holds it delays the exit until it returns, seen up to ~3 s), so a killed
build leaves no orphan converting in the background.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


#: Environment every conversion worker sets before anything imports TensorFlow (also the Ray
#: actors of :mod:`czbuild.builder.ray_executor`).
WORKER_ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("TF_CPP_MIN_LOG_LEVEL", "3"),
    ("TF_ENABLE_ONEDNN_OPTS", "0"),
    ("KERAS_BACKEND", "tensorflow"),
)


def prepare_environment() -> None:
    """Set :data:`WORKER_ENVIRONMENT` (keeping values the user set)."""
    for key, value in WORKER_ENVIRONMENT:
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    """Serve jobs until stdin closes or a ``None`` job arrives."""
    parser = argparse.ArgumentParser(prog="python -m czbuild.builder.worker")
    parser.add_argument("--backend", default="czbuild.builder.backend:convert_job")
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_environment()
    threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()

    from czbuild.builder.jobs import load_backend, run_job
    from czbuild.builder.protocol import Progress, receive, send

    # Keep the protocol on a private copy of stdout; route fd 1 to stderr (the log).
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer

    backend = load_backend(args.backend)
    cache: dict[Any, Any] = {}
    while True:
        try:
            job = receive(proto_in)
        except EOFError:
            break
        if job is None:
            break
        result = run_job(
            backend, job, cache, on_progress=lambda phase: send(proto_out, Progress(phase))
        )
        send(proto_out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
