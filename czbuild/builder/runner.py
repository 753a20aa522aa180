"""Library entry points of the build layer: :func:`build`, :func:`status`, :func:`clean`.

:func:`build` runs the same doit task graph as ``dodo.py``, embedded through
``DoitMain(ModuleTaskLoader(...))``: sequentially for ``jobs == 1``, with doit's thread
runner (``-n jobs -P thread``) otherwise; conversions happen in worker subprocesses, so the
threads only wait on pipes and the build process never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from czbuild.builder import locking
from czbuild.builder.manifest import write_manifest
from czbuild.builder.reporter import BuildReporter, Summary
from czbuild.builder.session import BuildOptions, BuildSession, unwritable
from czbuild.builder.stamps import (
    iter_stamps,
    remove_stamp,
    report_path,
    stamp_output,
    state_dir,
)
from czbuild.builder.status import CheckWarning, VariantStatus
from czbuild.builder.tasks import doit_config, task_creators
from czbuild.files.scratch import pid_alive, temporary_owner
from czbuild.recipe.variant import Variant

if TYPE_CHECKING:
    from czbuild.builder.pool import Executor


@dataclass(frozen=True)
class BuildReport:
    """Result of :func:`build`.

    Attributes:
        summary: Built / up-to-date / failed variant names, with failure messages.
        exit_code: doit's exit code (0 success, 1 a task failed, 2/3 doit errors).
        out_dir: Absolute output directory.
        unverified: Up-to-date variants whose artifact was built with ``--no-verify``.
        warnings: Variant -> the warnings of its artifact's verification (built in this run
            or up to date; variants without warnings are left out).
    """

    summary: Summary
    exit_code: int
    out_dir: Path
    unverified: tuple[str, ...] = ()
    warnings: dict[str, tuple[CheckWarning, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.summary.failed


def build(
    variants: Sequence[Variant],
    options: BuildOptions | None = None,
    *,
    out: TextIO | None = None,
    verbose: bool = False,
    keep_going: bool = True,
    executor: Executor | None = None,
) -> BuildReport:
    """Build every out-of-date variant.

    Args:
        variants: From :func:`czbuild.recipe.load_variants`.
        options: Output directory, jobs, force, lock timeout, backend, verification.
        out: Where progress lines go (stdout by default).
        verbose: Also list up-to-date variants.
        keep_going: Build the other variants after a failure (``--continue``).
        executor: Run conversions here instead of a worker pool (tests).

    Returns:
        The report; ``report.ok`` is False if any variant failed.

    Raises:
        BuildError: Another build holds the output directory's lock.
    """
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from czbuild.builder import doit_state

    options = options or BuildOptions()
    out_dir = Path(os.path.abspath(options.out_dir))
    options.out_dir = out_dir
    stream = out or sys.stdout
    locking.hold(out_dir, options.lock_timeout)
    try:
        listing = _remove_state_temporaries(out_dir)
        session = BuildSession(variants, options, executor)
        session.note_stamp_listing(listing)
        config = doit_config(out_dir, reporter=None, continue_=keep_going, backend=doit_state.NAME)
    except OSError as exc:
        locking.release(out_dir)
        raise unwritable(exc, "the build state") from exc
    except BaseException:
        locking.release(out_dir)
        raise
    summary = Summary()
    summary.planned = len(variants)
    reporter = BuildReporter(stream, verbose=verbose, summary=summary)
    config["reporter"] = reporter
    task_build, task_manifest = task_creators(lambda: session)
    namespace = {"DOIT_CONFIG": config, "task_build": task_build, "task_manifest": task_manifest}
    argv = ["run"]
    threads = options.jobs
    if options.ray and threads <= 1:  # the actors are bounded by the cluster's CPUs
        from czbuild.builder.ray_executor import DEFAULT_IN_FLIGHT

        threads = DEFAULT_IN_FLIGHT
    if threads > 1:
        argv += ["-n", str(threads), "-P", "thread"]
    interrupted = False
    manifest_error: OSError | None = None
    doit_state.take_problems()
    try:
        with _one_plugin_scan():
            code = DoitMain(
                ModuleTaskLoader(namespace),
                config_filenames=(),
                extra_config={"BACKEND": {doit_state.NAME: doit_state.LOCATION}},
            ).run(argv)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _restore_absl_stream()
        session.close(interrupted=interrupted)
        # (skipped when the manifest task found it current and no stamp changed since)
        if not interrupted and session.manifest_current_at != session.stamp_changes:
            try:
                write_manifest(out_dir, session.cache)
            except OSError as exc:
                manifest_error = exc
        locking.release(out_dir)
    for problem in doit_state.take_problems():
        stream.write(f"czbuild: note: {problem}; czbuild's own build records are not affected\n")
    if manifest_error is not None:
        raise unwritable(manifest_error, "the build manifest")
    unverified = tuple(sorted(session.unverified)) if options.verify else ()
    if unverified:
        shown = ", ".join(unverified[:5]) + (", ..." if len(unverified) > 5 else "")
        stream.write(
            f"czbuild: note: {len(unverified)} up-to-date artifact(s) not verified "
            f"(built with --no-verify): {shown}; `czbuild build --force` rebuilds "
            "and verifies them\n"
        )
        stream.flush()
    warnings = {n: w for n, w in sorted(session.warnings.items()) if w}
    for line in warning_lines(warnings):
        stream.write(line + "\n")
    stream.flush()
    return BuildReport(
        summary=summary,
        exit_code=int(code or 0),
        out_dir=out_dir,
        unverified=unverified,
        warnings=warnings,
    )


@contextlib.contextmanager
def _one_plugin_scan() -> Iterator[None]:
    """doit looks up its plugins (commands, backends, reporters) with one scan of the installed
    distributions' entry points instead of one scan per kind while this block runs.

    doit calls ``entry_points(group=...)`` through ``doit.plugin.entry_points_impl`` for each
    kind; every call reads every distribution's metadata (a few ms each, a no-op build's
    whole budget is ~0.1 s). The plugins found are the same.
    """
    from importlib.metadata import entry_points

    from doit import plugin

    found: list[Any] = []  # EntryPoints (3.12+) or SelectableGroups: both select()

    def select(**params: Any) -> Any:
        if not found:
            found.append(entry_points())
        return found[0].select(**params)

    real = plugin.entry_points_impl
    plugin.entry_points_impl = lambda: select
    try:
        yield
    finally:
        plugin.entry_points_impl = real


def warning_lines(warnings: Mapping[str, Sequence[CheckWarning]]) -> list[str]:
    """The build summary's warning block: one line per variant with warnings.

    Warnings the recipe accepts (``verify.accept``) are marked; the others are the ones
    ``czbuild release`` refuses, which the last line says.
    """
    lines = []
    open_names = []
    for name, found in warnings.items():
        if not found:
            continue
        parts = []
        for w in found:
            figure = f" ({w.figure})" if w.figure else ""
            parts.append(f"{w.check}{figure}{' [accepted]' if w.accepted else ''}")
        lines.append(f"warning  {name}: {'; '.join(parts)}")
        if not all(w.accepted for w in found):
            open_names.append(name)
    if open_names:
        lines.append(
            f"czbuild: {len(open_names)} variant(s) with warnings (`czbuild status` shows them "
            "in full); `czbuild release` refuses them unless the recipe accepts the check "
            "(verify.accept) or --allow-warnings is given"
        )
    return lines


def _restore_absl_stream() -> None:
    """Point absl's log handler back at the real stderr after an in-process build.

    doit swaps ``sys.stderr`` for its own writer while a task runs; when TensorFlow (and
    with it absl logging) is first imported inside a task, absl's handler keeps that writer,
    which is closed when doit finishes ("Exception ignored in atexit" at exit).
    """
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is None:
        return
    try:
        absl_logging.get_absl_handler().python_handler.setStream(sys.__stderr__)
    except Exception:
        pass


def status(variants: Sequence[Variant], out_dir: Path) -> list[VariantStatus]:
    """Up-to-date state of each variant with the reasons; never builds, never locks."""
    session = BuildSession(variants, BuildOptions(out_dir=Path(out_dir)))
    try:
        return [session.status(v) for v in variants]
    finally:
        session.close()


def clean(
    variants: Sequence[Variant] | None,
    out_dir: Path,
    *,
    orphans: bool = False,
    lock_timeout: float = locking.DEFAULT_TIMEOUT,
) -> list[str]:
    """Remove artifacts, their stamps and reports, and the temporaries dead builds left.

    Args:
        variants: Variants to remove; None removes every artifact that has a stamp.
        out_dir: The output directory.
        orphans: Instead, remove only stamped artifacts of variants *not* in ``variants``
            (recipes or sweep points that no longer exist).
        lock_timeout: Seconds to wait for a running build.

    Returns:
        The artifact paths (relative to ``out_dir``) removed.
    """
    out_dir = Path(os.path.abspath(out_dir))
    locking.hold(out_dir, lock_timeout)
    try:
        session = BuildSession(list(variants or []), BuildOptions(out_dir=out_dir))
        _remove_state_temporaries(out_dir)
        removed: list[str] = []
        if variants is not None and not orphans:
            for variant in variants:
                if session.artifact_path(variant).exists() or remove_stamp(
                    out_dir, str(variant.output)
                ):
                    removed.append(str(variant.output))
                session.clean_variant(variant)
            return removed
        keep = {str(v.output) for v in variants or []} if orphans else set()
        for stamp in iter_stamps(out_dir):
            if stamp["output"] in keep:
                continue
            artifact = out_dir / stamp["output"]
            _unlink(artifact)
            _unlink(report_path(out_dir, stamp["output"]))
            remove_stamp(out_dir, stamp["output"])
            removed.append(stamp["output"])
        write_manifest(out_dir)
        return removed
    finally:
        locking.release(out_dir)


def _remove_state_temporaries(out_dir: Path) -> set[str]:
    """Temporary files killed czbuild processes left in the output folder (we hold the lock).

    In the state folder's top level, ``stamps/`` and ``reports/`` every hidden ``.tmp`` file
    is a leftover (only the lock holder writes there), and so in the output folder's top
    level; elsewhere in the output folder (artifact folders, also of variants that no longer
    exist) the PID-tagged temporaries of processes that are gone. One walk of the folder
    finds both, and the stamp files on the way (it is most of what a no-op build of many
    variants does besides the checks).

    Returns:
        The artifact paths of the stamp files found (:func:`czbuild.builder.stamps.stamp_listing`).
    """
    root = os.path.abspath(out_dir)
    state = str(state_dir(Path(root)))
    stamps_root = os.path.join(state, "stamps")
    anyone = (root, state, stamps_root, os.path.join(state, "reports"))
    inside = tuple(folder + os.sep for folder in anyone[2:])
    listing: set[str] = set()
    cut = len(stamps_root) + 1
    for dirpath, _dirnames, filenames in os.walk(root):
        in_stamps = dirpath == stamps_root or dirpath.startswith(inside[0])
        folder = dirpath[cut:].replace(os.sep, "/") if in_stamps else ""
        for name in filenames:
            if in_stamps:
                rel = stamp_output(folder, name)
                if rel is not None:
                    listing.add(rel)
                    continue
            if not (name.startswith(".") and name.endswith(".tmp") and len(name) > 4):
                continue
            if dirpath in anyone or dirpath.startswith(inside):
                _unlink(Path(dirpath, name))
                continue
            pid = temporary_owner(name)
            if pid is not None and not pid_alive(pid):
                _unlink(Path(dirpath, name))
    return listing


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # gone already, or a read-only folder: the next run tries again
        pass
