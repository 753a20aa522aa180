"""Test doubles for the Ray executor (not a test module).

:func:`kill_once` is the fake backend of :mod:`support.build_fakes` with one more behaviour:
a variant whose fake op says ``kill_once: <marker file>`` kills its worker process (SIGKILL,
as the OOM killer would) the first time it runs -- while the marker does not exist yet -- and
converts normally when retried. The marker lives in the test's temporary folder (the local
Ray cluster of the tests runs on this machine).

More fake ops read by :func:`kill_once`:

* ``hog: <bytes>`` with ``hog_log: <file>``: append a line to the log (one per attempt), make
  that much memory resident, release it and convert normally (the actor judges the job's
  peak memory after it ends).
* ``handshake: <file>``: report the phase ``waiting for the coordinator`` and wait (up to
  30 s) until the test -- which hears the phase through the coordinator -- creates the file;
  fail if it never does, so only a phase that really streams back passes.

:class:`FirstNodeRefused` is an actor whose node differs in toolchain when it is the node
the build's first actor landed on (written to ``<scratch>/refused-node``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from czbuild.builder.ray_executor import ConversionActor
from support.build_fakes import fake_convert, fake_of

BACKEND = "support.ray_fakes:kill_once"


def kill_once(job: Any, cache: dict) -> dict:
    """Die on the first attempt of a ``kill_once`` variant, else :func:`fake_convert`."""
    marker = fake_of(job.variant.spec).get("kill_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"{os.getpid()}\n")
        # half an artifact in the worker's scratch folder, then gone (no cleanup runs)
        out = Path(job.out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(f".{out.name}.partial").write_bytes(b"PK half")
        os.kill(os.getpid(), signal.SIGKILL)
    fake = fake_of(job.variant.spec)
    if fake.get("hog"):
        with open(fake["hog_log"], "a") as log:
            log.write(f"{os.getpid()}\n")
        held = b"\x01" * int(fake["hog"])  # written, so resident
        del held
    if fake.get("handshake"):
        from czbuild.progress import phase

        phase("waiting for the coordinator")
        seen = Path(fake["handshake"])
        deadline = time.monotonic() + 30
        while not seen.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the coordinator never heard the phase")
            time.sleep(0.02)
    return fake_convert(job, cache)


class FirstNodeRefused(ConversionActor):
    """A :class:`ConversionActor` with another TensorFlow on the first actor's node."""

    def __init__(self, backend: str, scratch: str | None = None) -> None:
        super().__init__(backend, scratch)
        marker = Path(str(scratch)) / "refused-node"
        try:
            with open(marker, "x") as f:
                f.write(self.node_id)
        except FileExistsError:
            pass
        self.bad = marker.read_text() == self.node_id

    def toolchain(self) -> dict[str, str]:
        real = super().toolchain()
        return {**real, "tensorflow": "0.0.0-other-node"} if self.bad else real
