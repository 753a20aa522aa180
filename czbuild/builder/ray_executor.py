"""Run conversion jobs on a Ray cluster: ``czbuild build --ray ADDRESS`` (optional extra ``ray``).

The build process stays the coordinator and the only writer. :class:`RayExecutor` is a
:class:`~czbuild.builder.pool.WorkerPool` whose workers are Ray actors instead of local
subprocesses, so the scheduling is the local pool's: a model group sticks to the actor that
first served it (one model load and conversion per sweep), at most ``size`` actors run at
once, and a new model reuses an idle actor. Each actor runs the very function a local worker
runs (:func:`czbuild.builder.jobs.run_job` with the same backend), inside its own scratch
folder:

1. **Inputs travel by content.** The coordinator lists the job's files -- the model source
   (every file of a SavedModel folder), licence, custom-object files, ``model.inputs`` and the
   inputs the last build recorded (files the factory read, modules it imported) -- relative to
   their common folder, puts each distinct content into Ray's object store once
   (``ray.put`` per sha256, kept for the whole build) and sends ``(relative path, sha256,
   object ref)``. The actor keeps a store of the contents it already fetched (by sha256) and
   lays the files out in ``<scratch>/tree/`` with their relative paths (a factory imports
   its neighbours); files of an earlier job that this one does not list are removed first,
   so nothing undeclared is read from a previous layout.
2. **The job is relocated** into that tree (project folder, recipe file, inputs) and its
   artifact goes to ``<scratch>/out/``; the backend converts and verifies there exactly as in
   a local worker (same hidden temporary, same verification, same record -- the record
   names no absolute path).
3. **The bytes come back.** The actor returns the :class:`~czbuild.builder.protocol.JobResult`
   and the artifact's bytes, and deletes its copy. The coordinator checks the bytes against
   the result's sha256, writes them atomically to the real output path
   (:func:`czbuild.files.atomic_write`) and maps recorded input paths back into the project;
   the build session then hashes and stamps the artifact exactly as for a local worker.
   Nothing on the cluster writes into the project or the output folder.

**Toolchain.** The coordinator sends its toolchain (czbuild, TensorFlow, keras, tf2onnx,
onnx versions and czbuild's artifact-code digest, :mod:`czbuild.builder.toolchain`) with every
job; an actor whose own differs refuses the job before converting anything, with a message
naming its node and both versions. That node is refused for the rest of the build: the
actor is removed, later actors are pinned to accepted nodes (Ray node affinity), the actor
count shrinks to what those nodes hold, and the job moves to an actor on one of them; when
no node is left, the job fails with one line naming every refused node. czbuild's code
travels to the cluster with each actor (Ray ``runtime_env`` ``py_modules``), so only the
frameworks must be installed there.

**Resources and faults.** Every actor declares ``num_cpus`` and a memory reservation
(:func:`memory_estimate`: the model's size and the tile); a job that needs more than its
actor reserved gets a new, larger actor. Actors are spread over the nodes. A worker process
or node that dies mid-job is restarted by Ray (``max_restarts``) and the job retried
(``max_task_retries``), bounded by :attr:`RaySettings.retries`; nothing partial is
installed, because only complete, verified bytes ever reach the coordinator. A job whose
peak resident memory went over its estimate fails that variant with both figures once it
ends (the actor stays; nothing is retried or installed); the other variants build.

**Progress.** Each job notes ``on Ray node <address> (<host>, node <id>)``, then the phases
its actor's job announces, polled while it runs (the actor answers polls in a thread of its
own, jobs run one at a time); a job that waits for an actor reports the cluster's queue
(``N job(s) waiting for busy/size Ray actor(s)``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.builder.jobs import DEFAULT_BACKEND
from czbuild.builder.pool import Events, WorkerPool, _ignore
from czbuild.builder.protocol import Job, JobResult
from czbuild.errors import BuildError

__all__ = [
    "ADDRESS_ENV",
    "RAY_EXTRA",
    "ConversionActor",
    "RayExecutor",
    "RaySettings",
    "memory_estimate",
    "require_ray",
    "toolchain_problem",
]

#: The optional extra that installs the tested Ray (pyproject.toml pins the version).
RAY_EXTRA = "czbuild[ray]"
#: ``czbuild build --ray`` falls back to this variable (and ``doit ray=ADDRESS`` to it too).
ADDRESS_ENV = "CZBUILD_RAY_ADDRESS"
#: Doit threads (jobs in flight) when ``--ray`` is given without ``-j``: the actors are
#: bounded by the cluster's CPUs; the threads beyond them only wait (``queued``).
DEFAULT_IN_FLIGHT = 64

# Memory estimate of one conversion + verification job (see memory_estimate).
_GIB = 1 << 30
# interpreter, Ray's worker, TensorFlow / onnxruntime, tf2onnx: a Ray actor converting the
# bundled recipes peaked at 0.8-1.08 GiB (tiny models, tiles 128-512)
_BASE_MEMORY = 3 * _GIB // 2
_MODEL_FACTOR = 20  # loaded model, graph copies, ONNX export, reference runs
_PIXEL_BYTES = 4096  # activations per tile pixel (512 x 512 -> 1 GiB)
_DEFAULT_PIXELS = 512 * 512  # a free tile (czann with undefined H/W)

_SCRATCH_STEM = "czbuild-ray"
#: The actors' concurrency group of the coordinator's progress polls (own thread).
_PROGRESS_GROUP = "progress"
#: ``JobResult.error_type`` of a job refused by its node's toolchain: RayExecutor.run moves
#: it to another actor (never seen outside this module).
_REFUSED = "NodeRefused"
#: Seconds between the coordinator's polls of a running actor's phases, and between the
#: samples of an actor's memory where the kernel keeps no peak (see _PeakMemory).
PROGRESS_POLL = 0.5
MEMORY_SAMPLE = 0.05
#: Object store of ``--ray local``: inputs and artifacts pass through it once each, and Ray
#: spills to disk beyond it, so a workstation's shared memory is not claimed for a build.
LOCAL_OBJECT_STORE = 512 * 1024**2


def require_ray() -> Any:
    """Import Ray, or raise the one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise BuildError(
            f"--ray needs Ray, which is not installed: pip install '{RAY_EXTRA}'"
        ) from exc
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how jobs run on Ray.

    Attributes:
        address: ``local`` starts a Ray instance on this machine (stopped at the end of the
            build), ``auto`` joins the cluster this node belongs to, anything else is passed to
            ``ray.init(address=...)`` (``ray://head:10001``, ``10.0.0.1:6379``).
        num_cpus: CPUs each job (actor) reserves; also its onnxruntime threads.
        memory: Bytes each job reserves; None estimates them per job (:func:`memory_estimate`).
        retries: How often a job whose worker process or node died is retried.
        scratch: Folder on each node under which actors keep their scratch folders (None:
            the node's temporary folder).
        object_store_memory: Object store size of a ``local`` instance (Ray spills to disk
            beyond it); None: Ray's default (30 % of the memory).
        ship_code: Send czbuild's package with each actor (``runtime_env`` ``py_modules``);
            False when the nodes have the same czbuild installed.
    """

    address: str
    num_cpus: float = 1.0
    memory: int | None = None
    retries: int = 2
    scratch: str | None = None
    object_store_memory: int | None = LOCAL_OBJECT_STORE
    ship_code: bool = True


def memory_estimate(model_bytes: int, spatial_dims: tuple[int, ...] | None) -> int:
    """Bytes one conversion + verification job of a model of this size at this tile may need.

    ``1.5 GiB + 20 x model bytes + 4 KiB per tile pixel`` (a free tile counts as 512 x 512):
    the 7.8M-parameter U-Net of the engineering notes (31 MB) at tile 512 gives 3.1 GiB, where
    1.65 GB (conversion) to 3.6 GB (verified, before the verification's memory was cut to
    1.6-1.9 GB) were measured; the bundled recipes' tiny models peak at 0.8-1.08 GiB in a Ray
    actor (estimates 1.56-2.5 GiB). It keeps Ray from packing more conversions onto a node
    than fit, and a job whose peak goes over it fails (see :class:`_PeakMemory`).
    """
    pixels = math.prod(spatial_dims) if spatial_dims else _DEFAULT_PIXELS
    return _BASE_MEMORY + _MODEL_FACTOR * max(0, model_bytes) + _PIXEL_BYTES * pixels


def coordinator_toolchain() -> dict[str, str]:
    """This machine's toolchain: what every worker must report too."""
    from czbuild.builder.toolchain import czbuild_code_digest, toolchain_versions

    return {**toolchain_versions(), "czbuild_code": czbuild_code_digest()}


def toolchain_problem(expected: Mapping[str, str], actual: Mapping[str, str], node: str) -> str:
    """One line naming the node and every differing version, or ``""`` when they agree."""
    keys = sorted(set(expected) | set(actual))
    diffs = [
        f"{k} {actual.get(k, 'missing')} (coordinator: {expected.get(k, 'missing')})"
        for k in keys
        if expected.get(k) != actual.get(k)
    ]
    if not diffs:
        return ""
    return (
        f"Ray node {node} has a different toolchain: {', '.join(diffs)}; its artifacts would "
        "not match a local build, so it converts nothing -- install the coordinator's versions "
        "on every node"
    )


# --- coordinator side ----------------------------------------------------------------------


class RayExecutor(WorkerPool):
    """A :class:`WorkerPool` whose workers are Ray actors (see the module docstring).

    Connects to Ray when the first job needs a worker (a no-op build never starts Ray).

    Args:
        settings: Address and per-job resources.
        size: Actors at once; None: the cluster's CPUs divided by ``settings.num_cpus``,
            read when connecting.
        backend: ``module:function`` each actor runs per job (tests inject a fake).
    """

    def __init__(
        self, settings: RaySettings, size: int | None = None, backend: str = DEFAULT_BACKEND
    ) -> None:
        super().__init__(size=size or 1, backend=backend, log_dir=None)
        self.settings = settings
        self._auto_size = size is None
        self._ray: Any = None
        self._owns_connection = False
        self._expected: dict[str, str] = {}
        self._refs: dict[str, Any] = {}  # sha256 -> ObjectRef, once per content
        self._digests: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime, ino)
        self._ship_lock = threading.Lock()
        self._in_flight: dict[Hashable, int] = {}  # group -> its jobs in run()
        # node id -> the toolchain problem it reported: no actor starts there again
        self._refused: dict[str, str] = {}
        #: The actor class (tests substitute a subclass of :class:`ConversionActor`).
        self.actor_class: type = ConversionActor

    def run(self, job: Job, group: Hashable, events: Events | None = None) -> JobResult:
        """As :meth:`WorkerPool.run`, counting the group's jobs in flight (see _idle_worker).

        A job whose actor landed on a node with another toolchain goes back to the pool: that
        actor is gone, the node is never used again in this build (:meth:`refuse_node`), and
        the job takes an idle actor on an accepted node or a new actor placed on one.
        """
        with self._cond:
            self._in_flight[group] = self._in_flight.get(group, 0) + 1
        report = events or _ignore

        def queued(kind: str, text: str) -> None:
            if kind == "queued" and not text:
                text = self.queue_line()
            report(kind, text)

        try:
            while True:  # each pass refuses one more node: bounded by the cluster's nodes
                result = super().run(job, group, queued)
                if result.error_type != _REFUSED:
                    return result
        finally:
            with self._cond:
                self._in_flight[group] -= 1
                if not self._in_flight[group]:
                    del self._in_flight[group]

    def queue_line(self) -> str:
        """The cluster's queue, for a job that waits: jobs waiting and actors busy.

        Read under the pool's lock (called from :meth:`WorkerPool._checkout`).
        """
        waiting = sum(self._in_flight.values()) - sum(1 for w in self._workers if w.busy)
        busy = sum(1 for w in self._workers if w.busy)
        return f"{max(waiting, 1)} job(s) waiting for {busy}/{self.size} Ray actor(s)"

    def refuse_node(self, node_id: str, problem: str) -> None:
        """No actor of this build starts on ``node_id`` again (its toolchain differs).

        Without a fixed size, the actor count shrinks to what the accepted nodes hold: a new
        actor placed on a full node would wait for CPUs that idle actors keep for the build.
        """
        with self._cond:
            self._refused.setdefault(node_id, problem)
        if self._auto_size:
            cpus = sum(_offer(n, "CPU") for n in self._accepted_nodes())
            with self._cond:
                self.size = max(1, int(cpus // max(self.settings.num_cpus, 1e-9)))

    def retire_idle_over_capacity(self, keep: Any) -> bool:
        """Kill one idle actor when this build's actors need more than the cluster has.

        Actors keep their CPUs and memory while idle; with ``-j`` above what a fixed cluster
        holds, a new actor would wait for them forever. An actor is idle when no job is in
        flight for the models pinned to it (as in :meth:`_idle_worker`). Returns whether one
        was retired (never ``keep``, the actor waiting to be placed).
        """
        nodes = self._accepted_nodes()
        cpus = sum(_offer(n, "CPU") for n in nodes)
        memory = sum(_offer(n, "memory") for n in nodes)
        with self._cond:
            live = [w for w in self._workers if w.alive]
            held_cpus = len(live) * self.settings.num_cpus
            held_memory = sum(getattr(w, "_memory", 0) for w in live)
            if held_cpus <= cpus + 1e-9 and held_memory <= memory:
                return False
            victim: Any = next(  # a _RayWorker (the pool's list is typed for local workers)
                (w for w in sorted(live, key=lambda w: w.index) if w is not keep and self._free(w)),
                None,
            )
            if victim is None:
                return False
            victim._dead = True
            self._forget(victim)
        victim._kill(clean=True)
        return True

    def _accepted_nodes(self) -> list[dict[str, Any]]:
        """The live nodes this build has not refused."""
        with self._cond:
            refused = set(self._refused)
        try:
            nodes = self._ray.nodes()
        except Exception:
            return []
        return [n for n in nodes if n.get("Alive") and n["NodeID"] not in refused]

    def placement(self) -> tuple[Any, str]:
        """Where the next actor goes: ``(scheduling strategy, node id or "")``.

        Spread while no node was refused; then the accepted node with the most CPUs not
        held by this build's actors (pinned there: Ray never picks a refused node).

        Raises:
            BuildError: Every live node was refused (one line naming them and their versions).
        """
        with self._cond:
            refused = dict(self._refused)
            held: dict[str, float] = {}
            for worker in self._workers:
                node = getattr(worker, "node_id", "")
                if worker.alive and node:
                    held[node] = held.get(node, 0.0) + self.settings.num_cpus
        if not refused:
            return "SPREAD", ""
        free = {
            n["NodeID"]: _offer(n, "CPU") - held.get(n["NodeID"], 0) for n in self._accepted_nodes()
        }
        if not free:
            raise BuildError(
                f"no Ray node has the coordinator's toolchain ({len(refused)} refused): "
                + "; ".join(refused[k] for k in sorted(refused))
            )
        node = max(sorted(free), key=lambda n: free[n])
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=node, soft=False), node

    def _idle_worker(self) -> Any:
        """An idle actor whose groups have no job waiting, else None.

        With many jobs in flight (``--ray`` runs up to :data:`DEFAULT_IN_FLIGHT` doit threads),
        handing an idle actor to another model while its own model's next variant waits would
        make the actors alternate between models, loading each again and again; an actor
        changes model only when its model has nothing left.
        """
        return next(
            (w for w in sorted(self._workers, key=lambda w: w.index) if self._free(w)), None
        )

    def _free(self, worker: Any) -> bool:
        """Alive, not busy, and no job in flight for the models pinned to it (under the lock)."""
        return (
            worker.alive
            and not worker.busy
            and not any(self._in_flight.get(g) for g, w in self._affinity.items() if w is worker)
        )

    # WorkerPool calls _spawn under its lock when a group needs a new worker.
    def _spawn(self) -> Any:
        live = [w for w in self._workers if w.alive]
        self._connect()
        if len(live) >= self.size:
            return None
        worker = _RayWorker(self._spawned, self)
        self._spawned += 1
        # the pool's list holds anything with the worker interface (index, busy, alive, run)
        self._workers.append(worker)  # type: ignore[arg-type]
        return worker

    def _connect(self) -> None:
        if self._ray is not None:
            return
        ray = require_ray()
        if not ray.is_initialized():
            address = self.settings.address
            kwargs: dict[str, Any] = {
                "namespace": "czbuild",
                "log_to_driver": False,
                "configure_logging": False,
                "runtime_env": self.job_runtime_env(),
            }
            if address == "local":
                kwargs["include_dashboard"] = False
                if self.settings.object_store_memory:
                    kwargs["object_store_memory"] = self.settings.object_store_memory
            else:
                kwargs["address"] = address
            quiet = logging.getLogger("ray._private.worker")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # "SIGTERM handler is not set": doit's threads
            try:
                ray.init(**kwargs)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError ...
                raise BuildError(
                    f"cannot connect to Ray at {address!r} (--ray / ${ADDRESS_ENV}): "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                ) from exc
            finally:
                quiet.setLevel(level)
            self._owns_connection = True
        self._ray = ray
        self._expected = coordinator_toolchain()
        if self._auto_size:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            self.size = max(1, int(cpus // max(self.settings.num_cpus, 1e-9)))

    def job_runtime_env(self) -> dict[str, Any]:
        """The Ray job's runtime environment: czbuild's package (uploaded once per build)."""
        if not self.settings.ship_code:
            return {}
        import czbuild

        return {
            "py_modules": [str(Path(czbuild.__file__).resolve().parent)],
            "excludes": ["__pycache__", "*.pyc"],
        }

    def actor_runtime_env(self) -> dict[str, Any]:
        """Each actor's environment variables: its CPU share, ``SOURCE_DATE_EPOCH``."""
        variables = {"CZBUILD_THREADS": str(max(1, int(self.settings.num_cpus)))}
        if "SOURCE_DATE_EPOCH" in os.environ:  # part of the artifact bytes and the toolchain
            variables["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
        return {"env_vars": variables}

    def expected_toolchain(self) -> dict[str, str]:
        return dict(self._expected)

    def ship(self, job: Job) -> tuple[str, list[tuple[str, str, Any]], int]:
        """Put the job's files into the object store (once per content).

        Returns:
            The common folder of the project and the files, ``(relative POSIX path, sha256,
            object ref)`` per file, and the model's size in bytes.
        """
        from czbuild.files.digest import file_sha256

        variant = job.variant
        project = Path(os.path.abspath(variant.project_dir))
        files = _job_files(job)
        root = Path(os.path.commonpath([str(project), *map(str, files)])) if files else project
        model = Path(os.path.abspath(variant.path(variant.spec.model.path)))
        out: list[tuple[str, str, Any]] = []
        model_bytes = 0
        with self._ship_lock:
            for path in files:
                st = path.stat()
                key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
                digest = self._digests.get(key)
                if digest is None:
                    digest = self._digests[key] = file_sha256(path)
                ref = self._refs.get(digest)
                if ref is None:
                    data = path.read_bytes()
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise BuildError(f"{path} changed while being sent to the cluster")
                    ref = self._refs[digest] = self._ray.put(data)
                out.append((path.relative_to(root).as_posix(), digest, ref))
                if path == model or model in path.parents:
                    model_bytes += st.st_size
        return str(root), out, model_bytes

    def close(self) -> None:
        super().close()
        self._disconnect()

    def terminate(self) -> None:
        super().terminate()
        self._disconnect()

    def _disconnect(self) -> None:
        self._refs.clear()
        ray, self._ray = self._ray, None
        if ray is not None and self._owns_connection:
            self._owns_connection = False
            ray.shutdown()


def _job_files(job: Job) -> list[Path]:
    """Every regular file the job reads: declared inputs (folders walked) and recorded ones."""
    from czbuild.builder.reads import IMPORTED, READ

    variant = job.variant
    project = Path(os.path.abspath(variant.project_dir))
    candidates = [Path(os.path.abspath(p)) for p in (variant.recipe_file, *variant.inputs)]
    for item in job.source_key:
        if len(item) >= 2 and item[0] in (READ, IMPORTED):
            path = Path(str(item[1]))
            candidates.append(path if path.is_absolute() else project / path)
    found: dict[str, Path] = {}
    for path in candidates:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    full = Path(dirpath, name)
                    if full.is_file():
                        found.setdefault(str(full), full)
        elif path.is_file():
            found.setdefault(str(path), path)
    return [found[k] for k in sorted(found)]


class _RayWorker:
    """One Ray actor, with the interface :class:`WorkerPool` expects of a worker."""

    def __init__(self, index: int, pool: RayExecutor) -> None:
        self.index = index
        self.busy = False
        self.jobs_run = 0
        self.log_path = None
        self._pool = pool
        self._actor: Any = None
        self._memory = 0
        self._dead = False
        self.node = ""
        self.node_id = ""

    @property
    def alive(self) -> bool:
        return not self._dead

    def _start(self, memory: int) -> None:
        pool = self._pool
        ray = pool._ray
        settings = pool.settings
        if self._actor is not None:
            self._kill()
        self.node = self.node_id = ""
        strategy, self.node_id = pool.placement()  # BuildError when every node was refused
        options: dict[str, Any] = {
            "num_cpus": settings.num_cpus,
            "memory": memory,
            "max_restarts": settings.retries,
            "max_task_retries": settings.retries,
            "scheduling_strategy": strategy,
            "runtime_env": pool.actor_runtime_env(),
        }
        # Jobs run one at a time in the default group (in order); the progress polls have
        # their own thread, so they are answered while a job runs.
        remote = ray.remote(concurrency_groups={_PROGRESS_GROUP: 1})(pool.actor_class)
        self._actor = remote.options(**options).remote(pool.backend, settings.scratch)
        self._memory = memory

    def run(self, job: Job, events: Events = _ignore) -> JobResult:
        self.jobs_run += 1
        pool = self._pool
        ray = pool._ray
        try:
            root, files, model_bytes = pool.ship(job)
        except (OSError, BuildError) as exc:
            return JobResult(
                ok=False, error=f"cannot send the job's inputs: {exc}", error_type="RayShipError"
            )
        need = pool.settings.memory or memory_estimate(model_bytes, job.variant.spec.spatial_dims)
        try:
            if self._actor is None or need > self._memory:
                # whole GiB: the tiles of a sweep rarely need a new (larger) actor and load
                reserve = -(-need // _GIB) * _GIB
                short = _no_node_fits(ray, pool.settings.num_cpus, reserve)
                if short:
                    events("phase", short)
                self._start(reserve)
                placed = self._actor.node_name.remote()
                while not ray.wait([placed], timeout=PROGRESS_POLL)[0]:
                    if pool.retire_idle_over_capacity(self):
                        events("note", "retired an idle Ray actor to make room for this one")
                self.node, self.node_id = ray.get(placed)
            events("note", f"on Ray node {self.node}")
            reply = self._call(job, root, files, need, events)
        except BuildError as exc:  # every node refused (placement)
            self._dead = True
            return JobResult(ok=False, error=str(exc), error_type="ToolchainMismatch")
        except Exception as exc:  # RayActorError / ActorDiedError / RayTaskError ...
            self._dead = True
            return _died(exc, self.node, need, pool.settings.retries)
        if reply.get("refused"):
            # A node with another toolchain: never again in this build. This worker ends
            # (its actor holds the node's CPUs) and RayExecutor.run hands the job back to
            # the pool, which finds it an actor on an accepted node.
            pool.refuse_node(reply["node_id"], reply["result"].error)
            self._dead = True
            self._kill()
            events("note", f"refused Ray node {reply['node']} (toolchain); moving the job")
            return replace(reply["result"], error_type=_REFUSED)
        self.node = reply["node"]
        result: JobResult = _restated(
            reply["result"],
            [(reply["tree"], root), (reply["out"], _out_dir(job))],
        )
        if not result.ok:
            return result
        data: bytes | None = reply["artifact"]
        if data is None or hashlib.sha256(data).hexdigest() != result.sha256:
            return JobResult(
                ok=False,
                error=f"the artifact sent back from Ray node {self.node} does not match the "
                "sha256 its worker reported",
                error_type="RayTransferError",
            )
        from czbuild.files.atomic import atomic_write

        out_path = Path(job.out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, data)
        inputs = tuple((role, _map_back(path, reply["tree"], root)) for role, path in result.inputs)
        return replace(result, inputs=inputs)

    def _call(
        self,
        job: Job,
        root: str,
        files: list[tuple[str, str, Any]],
        need: int,
        events: Events,
    ) -> dict[str, Any]:
        """Run the job on the actor, passing the phases it reports on to ``events``."""
        ray = self._pool._ray
        actor = self._actor
        ref = actor.run.remote(job, root, files, self._pool.expected_toolchain(), need)
        seen = 0
        while not ray.wait([ref], timeout=PROGRESS_POLL)[0]:
            try:
                poll = actor.phases.options(concurrency_group=_PROGRESS_GROUP).remote(seen)
                phases = ray.get(poll, timeout=PROGRESS_POLL * 4)
            except Exception:  # the actor died or is restarting: ``ref`` tells
                continue
            for name in phases:
                events("phase", name)
            seen += len(phases)
        reply: dict[str, Any] = ray.get(ref)
        for name in reply.get("phases", [])[seen:]:  # the last ones, between two polls
            events("phase", name)
        return reply

    def _kill(self, *, clean: bool = False, timeout: float = 10.0) -> None:
        actor, self._actor = self._actor, None
        ray = self._pool._ray
        if actor is None or ray is None:
            return
        try:
            if clean:  # remove its scratch folder first (a killed one is swept later)
                ray.get(actor.remove_scratch.remote(), timeout=timeout)
        except Exception:
            pass
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            pass

    def close(self, timeout: float = 10.0) -> None:
        self._kill(clean=True, timeout=timeout)

    def terminate(self) -> None:
        self._kill()


def _died(exc: BaseException, node: str, need: int, retries: int) -> JobResult:
    """The failed result of a job whose actor died (Ray's own retries used up)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = f"; last on node {node}" if node else ""
    text = str(exc).lower()
    if type(exc).__name__ == "OutOfMemoryError" or "memory pressure" in text:
        return JobResult(
            ok=False,
            error=f"Ray's memory monitor killed the worker running this job ({retries} "
            f"retries used{where}); the job's memory estimate was "
            f"{need / _GIB:.2f} GiB -- use a smaller tile, raise the estimate "
            f"(RaySettings.memory) or run on nodes with more memory: {first}",
            error_type="OutOfMemory",
        )
    return JobResult(
        ok=False,
        error=f"the Ray worker running this job died ({retries} retries used{where}): "
        f"{type(exc).__name__}: {first}",
        error_type="WorkerDied",
    )


def _out_dir(job: Job) -> str:
    """The coordinator's build folder: ``job.out_path`` without the variant's output path."""
    return str(Path(job.out_path).parents[len(PurePosixPath(str(job.variant.output)).parts) - 1])


def _restated(result: JobResult, moves: list[tuple[str, str]]) -> JobResult:
    """``result`` with the actor's scratch folders named as the coordinator's folders."""

    def text(value: str) -> str:
        for old, new in moves:
            value = value.replace(old, new)
        return value

    return replace(result, error=text(result.error), traceback=text(result.traceback))


def _no_node_fits(ray: Any, cpus: float, memory: int) -> str:
    """A progress phase when no live node offers ``cpus`` and ``memory`` (else ``""``).

    The actor then waits for one: an autoscaler may add it; on a fixed cluster the build
    waits, and this line says why.
    """
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Exception:
        return ""
    for node in nodes:
        if _offer(node, "CPU") >= cpus and _offer(node, "memory") >= memory:
            return ""
    largest = max((_offer(n, "memory") for n in nodes), default=0)
    return (
        f"waiting for a Ray node with {cpus:g} CPU and {memory / _GIB:.0f} GiB memory (the "
        f"largest now offers {largest / _GIB:.1f} GiB)"
    )


def _offer(node: Mapping[str, Any], resource: str) -> float:
    """A node's total of ``resource`` (``CPU``, ``memory`` in bytes) from ``ray.nodes()``."""
    return float((node.get("Resources") or {}).get(resource, 0))


def _map_back(path: str, tree: str, root: str) -> str:
    """A path the actor recorded inside its tree, as the coordinator's path."""
    try:
        rel = Path(path).relative_to(tree)
    except ValueError:
        return path
    return str(Path(root) / rel)


# --- worker side -----------------------------------------------------------------------------


class ConversionActor:
    """The Ray actor: runs the local worker's job function in a scratch folder of its node.

    Args:
        backend: ``module:function`` of the conversion backend.
        scratch: Folder for scratch folders (None: the node's temporary folder).
    """

    def __init__(self, backend: str, scratch: str | None = None) -> None:
        import sys

        from czbuild.builder.jobs import load_backend
        from czbuild.builder.worker import prepare_environment
        from czbuild.files.scratch import sweep_dead, temp_name

        prepare_environment()
        sys.dont_write_bytecode = True  # a layout file replaced within one mtime tick
        parent = Path(scratch or tempfile.gettempdir()) / _SCRATCH_STEM
        parent.mkdir(parents=True, exist_ok=True)
        sweep_dead(parent, _SCRATCH_STEM)  # actors of this node that died (killed mid-job)
        self.scratch = parent / temp_name(_SCRATCH_STEM)
        self.tree = self.scratch / "tree"
        self.store = self.scratch / "store"
        self.out = self.scratch / "out"
        for folder in (self.tree, self.store, self.out):
            folder.mkdir(parents=True, exist_ok=True)
        self.layout: dict[str, str] = {}  # relative path -> sha256 now in the tree
        self.backend = load_backend(backend)
        self.cache: dict[Any, Any] = {}
        self.node, self.node_id = _node_name()
        self._phases: list[str] = []  # of the running (or last) job

    def toolchain(self) -> dict[str, str]:
        return coordinator_toolchain()

    def node_name(self) -> tuple[str, str]:
        """This actor's node: ``(display name, Ray node id)``."""
        return self.node, self.node_id

    def phases(self, since: int) -> list[str]:
        """The phases the running job reported after the first ``since`` (progress polls)."""
        return list(self._phases[since:])

    def remove_scratch(self) -> None:
        """Delete this actor's scratch folder (the build is over)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def run(
        self,
        job: Job,
        root: str,
        files: list[tuple[str, str, Any]],
        expected: Mapping[str, str],
        memory: int | None = None,
    ) -> dict[str, Any]:
        """Check the toolchain, lay out the files, run the job, return result and bytes.

        ``memory`` is the job's estimate: a job whose peak resident memory went over it
        fails with both figures once it ends (:class:`_PeakMemory`); nothing of it is
        installed, and this actor stays usable for the next job.
        """
        from czbuild.builder.jobs import run_job

        phases: list[str] = []
        self._phases = phases
        reply: dict[str, Any] = {
            "node": self.node,
            "node_id": self.node_id,
            "tree": str(self.tree),
            "out": str(self.out),
            "phases": phases,
            "artifact": None,
        }
        problem = toolchain_problem(expected, self.toolchain(), self.node)
        if problem:
            reply["refused"] = True
            reply["result"] = JobResult(ok=False, error=problem, error_type="ToolchainMismatch")
            return reply
        self._lay_out(files)
        local = _relocate(job, Path(root), self.tree, self.out)
        with _PeakMemory() as peak:
            result = run_job(self.backend, local, self.cache, on_progress=phases.append)
        if memory and peak.bytes > memory:
            result = _over_estimate(result, peak.bytes, memory, self.node)
        artifact = Path(local.out_path)
        if result.ok:
            reply["artifact"] = artifact.read_bytes()
        try:
            artifact.unlink()
        except FileNotFoundError:
            pass
        reply["result"] = result
        return reply

    def _lay_out(self, files: list[tuple[str, str, Any]]) -> None:
        import ray

        from czbuild.files.atomic import atomic_write

        wanted = {rel: digest for rel, digest, _ in files}
        for rel, digest, ref in files:
            stored = self.store / digest
            if not stored.exists():
                data = ray.get(ref)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise BuildError(f"{rel}: the bytes received do not match sha256 {digest}")
                atomic_write(stored, data, durable=False)
            if self.layout.get(rel) == digest:
                continue
            target = self.tree / PurePosixPath(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stored, target)
            self.layout[rel] = digest
        for dirpath, dirnames, filenames in os.walk(self.tree, topdown=False):
            for name in filenames:
                full = Path(dirpath, name)
                rel = full.relative_to(self.tree).as_posix()
                if rel not in wanted:
                    full.unlink()
                    self.layout.pop(rel, None)
            for name in dirnames:
                try:
                    Path(dirpath, name).rmdir()
                except OSError:
                    pass


def _over_estimate(result: JobResult, peak: int, estimate: int, node: str) -> JobResult:
    """``result`` failed because the job's peak memory went over its estimate (figures)."""
    also = f"; the job also failed: {result.error}" if not result.ok else ""
    return JobResult(
        ok=False,
        error=f"the job went over its memory estimate on Ray node {node}: peak "
        f"{peak / _GIB:.2f} GiB resident, estimate {estimate / _GIB:.2f} GiB -- use a "
        f"smaller tile, raise the estimate (RaySettings.memory) or run on nodes with more "
        f"memory{also}",
        error_type="MemoryOverEstimate",
        seconds=result.seconds,
        traceback=result.traceback,
        verification=result.verification,
    )


_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    """A ``VmRSS`` / ``VmHWM`` figure of this process in KiB (Linux), else None."""
    try:
        with open(_STATUS, "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class _PeakMemory:
    """The peak resident memory of this process while a ``with`` block runs (one job).

    On Linux the kernel keeps the peak (``VmHWM``); entering resets it to the current
    resident size (``/proc/self/clear_refs``), so the figure is exact -- no sampling, no
    thread, nothing done to the job while it runs. Where that reset is not allowed a thread
    samples ``VmRSS`` every :data:`MEMORY_SAMPLE` seconds; without ``/proc`` (a macOS node)
    there is no figure and no check. The figure is the whole actor process (its
    interpreter and the cached model included), which the estimate's base covers. The job
    is judged after it ends: one that grows past the node's memory is killed by Ray's
    memory monitor or the kernel first, which the coordinator reports with the estimate.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def __enter__(self) -> _PeakMemory:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to VmRSS
            if _status_kib("VmHWM") is not None:
                return self
        except OSError:
            pass
        self.bytes = _resident_now()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="czbuild-mem")
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(MEMORY_SAMPLE):
            self.bytes = max(self.bytes, _resident_now())

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            self.bytes = (_status_kib("VmHWM") or 0) * 1024
            return
        self._done.set()
        self._thread.join()
        self.bytes = max(self.bytes, _resident_now())


def _resident_now() -> int:
    """This process's resident memory now (0 without ``/proc``: no figure, no check)."""
    return (_status_kib("VmRSS") or 0) * 1024


def _relocate(job: Job, root: Path, tree: Path, out: Path) -> Job:
    """The job with every coordinator path moved into this actor's tree and output folder."""
    variant = job.variant

    def moved(path: Path | str) -> Path:
        try:
            return tree / Path(os.path.abspath(path)).relative_to(root)
        except ValueError:  # not shipped: the same path
            return Path(path)

    local = replace(
        variant,
        project_dir=moved(variant.project_dir),
        recipe_file=moved(variant.recipe_file),
        inputs=tuple(moved(p) for p in variant.inputs),
    )
    return replace(job, variant=local, out_path=str(out / Path(str(variant.output))))


def _node_name() -> tuple[str, str]:
    """``(display name, Ray node id)`` of this process's node (no id outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():  # outside a Ray worker: never start or join Ray here
            return socket.gethostname(), ""
        ip = ray.util.get_node_ip_address()
        node_id = ray.get_runtime_context().get_node_id()
        return f"{ip} ({socket.gethostname()}, node {node_id[:12]})", node_id
    except Exception:
        return socket.gethostname(), ""


def executor_for(address: str, *, jobs: int, backend: str) -> RayExecutor:
    """The executor of ``BuildOptions(ray=address)``: ``jobs`` > 1 fixes the actor count."""
    require_ray()
    return RayExecutor(
        RaySettings(address=address), size=jobs if jobs > 1 else None, backend=backend
    )
