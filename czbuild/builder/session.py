"""One build run over a list of variants: up-to-date checks, the build action, cleaning.

A :class:`BuildSession` is what the doit tasks call into. It owns the hash cache, the
executor (worker pool), and the rules for recording results:

1. take the output directory's lock (once per process);
2. re-check the stamp (another build may have produced the artifact while we waited);
3. delete the old stamp, run the conversion job: the worker converts into a hidden temporary
   file, verifies it and only then renames it to the final name
   (:mod:`czbuild.builder.verification`; ``--no-verify`` writes the final name directly, still
   atomically);
4. hash the new artifact, write its stamp (with the verification record) atomically, keep the
   report under ``<out>/.czbuild/reports/``, regenerate the manifest.

A kill between 3 and 4 leaves a complete, verified artifact without a stamp, which the next
run rebuilds; nothing else can be half-done. A failed verification fails the variant and
installs nothing.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from czbuild.builder import locking
from czbuild.builder.fingerprint import (
    Fingerprint,
    compute_fingerprint,
    recorded_input,
    recorded_inputs,
    spec_of_stamp,
)
from czbuild.builder.hashing import HashCache
from czbuild.builder.jobs import DEFAULT_BACKEND
from czbuild.builder.manifest import write_manifest
from czbuild.builder.stamps import (
    ArtifactRecord,
    make_stamp,
    read_stamp,
    remove_stamp,
    report_path,
    reports_dir,
    stamp_path,
    state_dir,
    write_stamp,
)
from czbuild.builder.status import (
    CheckWarning,
    VariantStatus,
    compare,
    record_warnings,
    stamp_verified,
)
from czbuild.errors import BuildError
from czbuild.files.canonical import write_json
from czbuild.recipe.variant import Variant

if TYPE_CHECKING:  # the worker pool and the job protocol load when a variant is built
    from czbuild.builder.pool import Executor
    from czbuild.builder.protocol import Job

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    """How to build.

    Attributes:
        out_dir: Output directory (artifacts, manifest, ``.czbuild/`` state).
        jobs: Maximum number of conversion workers running at once.
        force: Rebuild even up-to-date artifacts.
        lock_timeout: Seconds to wait for another build on the same ``out_dir``.
        backend: ``module:function`` the workers run per job (tests inject a fake here).
        in_process: Convert in this process instead of worker subprocesses.
        debug: Put worker tracebacks (and every failed check's message) into failure messages.
        verify: Verify each artifact before installing it (``--no-verify`` sets False); the
            recipe's ``verify:`` section gives the settings.
        ray: Run the jobs on this Ray cluster (``--ray``: ``local``, ``auto`` or an address;
            :mod:`czbuild.builder.ray_executor`); None runs them in local worker processes.
            ``jobs`` is then the number of Ray actors at once (0 or 1: the cluster's CPUs).
        failed_reports_dir: Where the reports of failed verifications go
            (``<output>.verify.json``); None: with the others in ``<out>/.czbuild/reports``.
            ``czbuild check`` builds in a scratch folder it deletes and keeps those reports
            beside the build folder instead.
    """

    out_dir: Path = Path("build")
    jobs: int = 1
    force: bool = False
    lock_timeout: float = locking.DEFAULT_TIMEOUT
    backend: str = DEFAULT_BACKEND
    in_process: bool = False
    debug: bool = False
    verify: bool = True
    ray: str | None = None
    failed_reports_dir: Path | None = None


@dataclass
class Outcome:
    """What happened to one variant in this session."""

    status: str  # "built" | "up-to-date" | "failed"
    seconds: float = 0.0
    error: str = ""
    warnings: tuple[CheckWarning, ...] = ()


@dataclass
class BuildSession:
    """State shared by the tasks of one run (see the module docstring)."""

    variants: Sequence[Variant]
    options: BuildOptions = field(default_factory=BuildOptions)
    executor: Executor | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(os.path.abspath(self.options.out_dir))
        self.cache = HashCache.shared(state_dir(self.out_dir) / "hashcache.json")
        self.outcomes: dict[str, Outcome] = {}
        self.unverified: set[str] = set()  # up-to-date variants whose stamp has no verification
        # Stamps written or removed by this session, and the count at which the manifest task
        # found manifest.json current (tasks.ManifestCheck): equal at the end of a build means
        # no stamp changed since, and the closing manifest refresh can be skipped.
        self.stamp_changes = 0
        self.manifest_current_at: int | None = None
        # What this session knows of the stamp folder while this process holds the output
        # folder's lock (one tenure of it): stamps status() read, by artifact path; the
        # stamp files the build's first walk found (runner); the outputs whose stamp this
        # session wrote or removed since. The manifest check then neither walks the stamp
        # folder nor reads every stamp again (tasks.ManifestCheck, stamp_snapshot()).
        self._tenure: int | None = None
        self._stamps: dict[str, dict[str, Any] | None] = {}
        self._listing: set[str] | None = None
        self._changed: set[str] = set()
        # variant -> warnings of its verification (built now, or up to date)
        self.warnings: dict[str, tuple[CheckWarning, ...]] = {}
        # listener(variant, kind, text): progress of running jobs (the reporter sets it)
        self.listener: Callable[[str, str, str], None] | None = None
        self._lock = threading.Lock()
        self._executor_lock = threading.Lock()
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate variant names: {', '.join(dupes)}")

    def __repr__(self) -> str:  # short: `doit info` prints the task meta that holds it
        return f"BuildSession(out_dir={str(self.out_dir)!r}, variants={len(self.variants)})"

    # --- paths and checks -------------------------------------------------------------

    def artifact_path(self, variant: Variant) -> Path:
        """Absolute path of the variant's artifact."""
        return self.out_dir / Path(str(variant.output))

    def fingerprint(self, variant: Variant, stamp: Mapping[str, Any] | None = None) -> Fingerprint:
        """The variant's fingerprint, with the inputs ``stamp`` says the worker recorded."""
        return compute_fingerprint(variant, self.cache, recorded_inputs(stamp))

    def status(self, variant: Variant) -> VariantStatus:
        """Whether ``variant`` is up to date, with the reasons if not."""
        tenure = locking.holding(self.out_dir)
        stamp = read_stamp(self.out_dir, str(variant.output))
        fp = compute_fingerprint(
            variant, self.cache, recorded_inputs(stamp), plain_spec=spec_of_stamp(variant, stamp)
        )
        if tenure is not None:
            self._remember_stamp(fp.output, stamp, tenure)
        reasons = compare(fp, stamp, self.artifact_path(variant), self.cache)
        verified = stamp_verified(stamp)
        warnings = record_warnings((stamp or {}).get("verification"), _accepted(variant))
        if not reasons:
            with self._lock:
                if verified is False:
                    self.unverified.add(variant.name)
                self.warnings[variant.name] = warnings
        return VariantStatus(
            variant=variant.name,
            output=fp.output,
            reasons=reasons,
            verified=verified,
            warnings=warnings,
        )

    def _remember_stamp(self, output: str, stamp: dict[str, Any] | None, tenure: int) -> None:
        with self._lock:
            self._enter_tenure(tenure)
            if output not in self._changed:
                self._stamps[output] = stamp

    def _enter_tenure(self, tenure: int) -> None:
        if tenure != self._tenure:  # (caller holds self._lock)
            self._tenure = tenure
            self._stamps = {}
            self._listing = None
            self._changed = set()

    def note_stamp_listing(self, listing: set[str]) -> None:
        """The stamp files (artifact paths) a walk of the stamp folder found under the lock."""
        tenure = locking.holding(self.out_dir)
        if tenure is None:
            return
        with self._lock:
            self._enter_tenure(tenure)
            self._listing = set(listing) - self._changed

    def _forget_stamp(self, output: str) -> None:
        """This session is about to write or remove the stamp of ``output``."""
        with self._lock:
            self._stamps.pop(output, None)
            self._changed.add(output)

    def stamp_snapshot(
        self,
    ) -> tuple[dict[str, dict[str, Any] | None], set[str] | None]:
        """``(stamps, listing)``: what this session knows of the stamp folder right now.

        ``stamps``: the stamps :meth:`status` read, by artifact path; ``listing``: every
        stamp file's artifact path, or None when unknown. Both are empty / None unless this
        process has held the output folder's lock since they were taken (nobody else can
        have written stamps meanwhile); stamps this session wrote or removed since are left
        out of ``stamps`` and looked up on disk for ``listing``.
        """
        with self._lock:
            if self._tenure is None or self._tenure != locking.holding(self.out_dir):
                return {}, None
            listing = None
            if self._listing is not None:
                listing = set(self._listing)
                for output in self._changed:
                    if os.path.isfile(stamp_path(self.out_dir, output)):
                        listing.add(output)
                    else:
                        listing.discard(output)
            return dict(self._stamps), listing

    # --- the build action ---------------------------------------------------------------

    def build_variant(self, variant: Variant) -> dict[str, Any] | Any:
        """doit action: build one variant. Returns doit values, or a ``TaskFailed``."""
        from doit.exceptions import TaskFailed

        start = time.perf_counter()
        try:
            outcome = self._build(variant)
        except Exception as exc:
            from czbuild.errors import CzbuildError

            message = str(exc) if isinstance(exc, CzbuildError) else f"{type(exc).__name__}: {exc}"
            outcome = Outcome("failed", error=message)
        outcome.seconds = time.perf_counter() - start
        with self._lock:
            self.outcomes[variant.name] = outcome
            if outcome.status == "failed":
                self.warnings.pop(variant.name, None)
            elif outcome.status == "built":
                self.warnings[variant.name] = outcome.warnings
        if outcome.status == "failed":
            return TaskFailed(outcome.error)
        return {
            "czbuild": outcome.status,
            "seconds": round(outcome.seconds, 3),
            "warnings": [w.line() for w in outcome.warnings],
        }

    def _build(self, variant: Variant) -> Outcome:
        locking.hold(self.out_dir, self.options.lock_timeout)
        stamp = read_stamp(self.out_dir, str(variant.output))
        fp = self.fingerprint(variant, stamp)
        artifact = self.artifact_path(variant)
        if not self.options.force and not compare(fp, stamp, artifact, self.cache):
            return Outcome("up-to-date")
        if fp.missing_inputs:
            missing = "; ".join(
                f"{i.role} {_unusable(Path(variant.project_dir), i.path)}: {i.path}"
                for i in fp.missing_inputs
            )
            return Outcome("failed", error=f"{fp.recipe_file}: {missing}")
        pin_error = _pin_mismatch(variant, fp, self.cache)
        if pin_error:
            return Outcome("failed", error=pin_error)
        self.stamp_changes += 1
        self._forget_stamp(fp.output)
        remove_stamp(self.out_dir, fp.output)
        _remove_stale_temporaries(artifact)
        from czbuild.builder.protocol import Job

        job = Job(
            variant=variant,
            out_path=str(artifact),
            source_key=_source_key(fp),
            verify=self.options.verify,
            reuse=not self.options.force,
        )
        result = self._repackaged(job) or self._get_executor().run(
            job, group=_source_key(fp), events=self._events_of(variant.name)
        )
        report_file = self._keep_report(fp.output, result.verification)
        if not result.ok:
            error = result.error
            if fp.recipe_file not in error and Path(fp.recipe_file).name not in error:
                error = f"{fp.recipe_file}: {error}"
            if result.verification is not None:
                error += f"; full report: {_display(report_file)}"
                if self.options.debug:
                    from czbuild.builder.verification import failure_details

                    error += "\n" + "\n".join(failure_details(result.verification))
            elif self.options.debug and result.traceback:
                error += "\n" + result.traceback
            return Outcome("failed", error=error)
        self.cache.forget(artifact)
        try:
            sha = self.cache.file_sha256(artifact)
        except FileNotFoundError:
            return Outcome(
                "failed", error=f"the converter reported success but wrote no {artifact}"
            )
        if sha != result.sha256:
            return Outcome("failed", error=f"{artifact} changed while being recorded; build again")
        fp = fp.with_recorded(
            recorded_input(role, path, variant.project_dir, self.cache)
            for role, path in result.inputs
        )
        record = ArtifactRecord(
            path=fp.output, sha256=sha, size=artifact.stat().st_size, members=result.members
        )
        try:
            self.stamp_changes += 1
            self._forget_stamp(fp.output)
            write_stamp(self.out_dir, make_stamp(fp, record, result.verification))
        except OSError as exc:
            return Outcome(
                "failed",
                error=f"{fp.output} is complete, but its build record could not be written: "
                f"{_cannot_write(exc)}; the next build makes it again",
            )
        try:
            write_manifest(self.out_dir, self.cache)
        except OSError as exc:
            return Outcome(
                "failed",
                error=f"{fp.output} is built and recorded, but {_cannot_write(exc)}; the next "
                "build writes the manifest again",
            )
        try:
            self.cache.save()
        except OSError as exc:  # the hash cache is only a speed-up
            log.debug("cannot save the hash cache: %s", exc)
        return Outcome("built", warnings=record_warnings(result.verification, _accepted(variant)))

    def _repackaged(self, job: Job) -> Any:
        """The job's result when the payload cache does it here (a class rename), else None.

        A cached payload whose payload-reading checks are all reusable
        (:func:`czbuild.builder.backend.reusable_hit`) is re-packaged in this process: no
        worker starts, nothing heavy is imported. Only for the real backend (a test's fake
        backend decides everything itself).
        """
        if self.options.backend != DEFAULT_BACKEND or not job.reuse:
            return None
        from czbuild.builder.backend import repackage_hit, reusable_hit
        from czbuild.builder.jobs import run_job

        try:
            hit = reusable_hit(job)
        except Exception:  # the cache is only a speed-up: the worker decides then
            log.debug("payload cache lookup failed", exc_info=True)
            return None
        if hit is None:
            return None
        events = self._events_of(job.variant.name)
        events("start", "")
        return run_job(
            lambda j, _: repackage_hit(j, hit), job, {}, on_progress=lambda p: events("phase", p)
        )

    def _events_of(self, name: str) -> Callable[[str, str], None]:
        """The executor's event callback for variant ``name``: forwards to the listener."""

        def events(kind: str, text: str) -> None:
            listener = self.listener
            if listener is not None:
                listener(name, kind, text)

        return events

    def _keep_report(self, output: str, record: dict[str, Any] | None) -> Path | None:
        """Write the verification record to ``<out>/.czbuild/reports/<output>.verify.json``.

        A failed record goes under ``options.failed_reports_dir`` instead when that is set (and
        a passing one removes the failed one left there by an earlier run).
        """
        path = report_path(self.out_dir, output)
        kept = self.options.failed_reports_dir
        if kept is not None:
            failed_path = Path(kept) / path.relative_to(reports_dir(self.out_dir))
            if record is not None and record.get("ok") is False:
                path = failed_path
            else:
                failed_path.unlink(missing_ok=True)
        if record is None:
            path.unlink(missing_ok=True)  # an older report would describe another build
            return None
        try:
            write_json(path, record)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("cannot write the verification report %s: %s", path, exc)
            return None
        return path

    def _get_executor(self) -> Executor:
        from czbuild.builder.pool import InProcessExecutor, WorkerPool

        with self._executor_lock:
            if self.executor is None:
                if self.options.ray:
                    from czbuild.builder.ray_executor import executor_for

                    self.executor = executor_for(
                        self.options.ray, jobs=self.options.jobs, backend=self.options.backend
                    )
                elif self.options.in_process:
                    self.executor = InProcessExecutor(self.options.backend)
                else:
                    self.executor = WorkerPool(
                        size=max(1, self.options.jobs),
                        backend=self.options.backend,
                        log_dir=state_dir(self.out_dir) / "logs",
                    )
            return self.executor

    # --- manifest, cleaning, shutdown ------------------------------------------------------

    def refresh_manifest(self) -> None:
        """doit action of the ``manifest`` task."""
        locking.hold(self.out_dir, self.options.lock_timeout)
        write_manifest(self.out_dir, self.cache)

    def clean_variant(self, variant: Variant) -> None:
        """Remove the artifact and stamp of ``variant`` (``doit clean`` / ``czbuild clean``)."""
        locking.hold(self.out_dir, self.options.lock_timeout)
        artifact = self.artifact_path(variant)
        self.stamp_changes += 1
        self._forget_stamp(PurePosixPath(variant.output).as_posix())
        remove_stamp(self.out_dir, str(variant.output))
        try:
            report_path(self.out_dir, str(variant.output)).unlink()
        except FileNotFoundError:
            pass
        for path in [artifact, *_stale_temporaries(artifact)]:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        _remove_empty_parents(artifact.parent, self.out_dir)
        write_manifest(self.out_dir)

    def close(self, *, interrupted: bool = False) -> None:
        """Stop workers and persist the hash cache."""
        executor, self.executor = self.executor, None
        if executor is not None:
            from czbuild.builder.pool import WorkerPool

            if interrupted and isinstance(executor, WorkerPool):
                executor.terminate()
            else:
                executor.close()
        try:
            self.cache.save()
        except OSError as exc:  # read-only output dir (status): the cache is only a speed-up
            log.debug("cannot save the hash cache: %s", exc)


def _unusable(project_dir: Path, path: str) -> str:
    """Why an input that could not be hashed is unusable: missing, or not a file or folder."""
    try:
        mode = os.stat(project_dir / path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a file: replace it with the model file"
    if stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a socket or device, not a file: replace it with the model file"
    return "missing"


def _cannot_write(exc: OSError) -> str:
    """``cannot write <file>: <reason>`` for an OSError of a write."""
    reason = exc.strerror or str(exc)
    return f"cannot write {exc.filename or 'a file'}: {reason}"


def unwritable(exc: OSError, what: str) -> BuildError:
    """The one-line error of a build that could not write ``what`` (its state or manifest).

    Says which file, why, and that the artifacts finished before are intact: each artifact is
    renamed into place complete and verified, before anything records it.
    """
    return BuildError(
        f"{_cannot_write(exc)} ({what}); artifacts finished before this are intact. Free "
        "space or make the output folder writable, then build again"
    )


def _pin_mismatch(variant: Variant, fp: Fingerprint, cache: HashCache) -> str | None:
    """Error text when the recipe pins ``model.sha256`` and the model differs.

    A pin may be the model's content digest (what the fingerprint holds, so checking it
    costs nothing) or, as before content digests, its byte digest (file sha256 or tree
    digest; asked of the stat cache only when the content digest does not match).
    """
    pin, path = variant.spec.model.sha256, variant.spec.model.path
    if not pin:
        return None
    for record in fp.inputs:
        if record.role != "model" or record.path != path or not record.sha256:
            continue
        if record.sha256.lower() == pin.lower():
            return None
        try:
            actual = cache.path_sha256(variant.path(path))
        except OSError:
            actual = None
        if actual is not None and actual.lower() == pin.lower():
            return None
        return (
            f"{fp.recipe_file}: model.sha256: the recipe pins {pin} but {path} has "
            f"content digest {record.sha256} (sha256 {actual}); update the pin or restore "
            "the model"
        )
    return None


def _accepted(variant: Variant) -> tuple[str, ...]:
    """The check names the variant's recipe accepts (``verify.accept``)."""
    settings = getattr(variant.spec, "verify", None)
    return tuple(getattr(settings, "accept", ()) or ())


def _source_key(fp: Fingerprint) -> tuple[tuple[str, str, str | None], ...]:
    """The model a variant converts: every non-licence input with its content hash."""
    return tuple((i.role, i.path, i.sha256) for i in fp.inputs if i.role != "licence")


def _stale_temporaries(artifact: Path) -> list[Path]:
    pattern = os.path.join(
        glob.escape(str(artifact.parent)), f".{glob.escape(artifact.name)}.*.tmp"
    )
    from czbuild.builder.verification import stale_verifying_files

    return sorted({Path(p) for p in glob.glob(pattern)} | set(stale_verifying_files(artifact)))


def _display(path: Path | None) -> str:
    """``path`` relative to the working directory when inside it (for messages)."""
    if path is None:
        return "(not written)"
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def _remove_stale_temporaries(artifact: Path) -> None:
    """Temporaries a killed converter left next to the artifact (we hold the lock)."""
    for path in _stale_temporaries(artifact):
        try:
            path.unlink()
        except OSError:
            pass


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
