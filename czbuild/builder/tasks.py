"""The doit task graph: one ``build:<variant>`` task per recipe variant, plus ``manifest``.

Used by ``dodo.py`` (plain ``doit``) and by ``czbuild build`` alike, so both run the same
graph. Each build task has:

* ``actions``: :meth:`BuildSession.build_variant` (conversion in a worker process);
* ``targets``: the artifact (so ``doit clean`` and ``doit info`` know it);
* ``uptodate``: a :class:`StampCheck`, which compares the variant's fingerprint with its
  czbuild stamp; doit's own saved state plays no part in the decision, so a SIGKILL, which
  loses doit's state, loses nothing that finished;
* ``clean``: removes the artifact and its stamp.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from czbuild.builder.manifest import manifest_path, render_manifest
from czbuild.builder.reporter import BuildReporter
from czbuild.builder.session import BuildSession
from czbuild.builder.stamps import state_dir
from czbuild.recipe.variant import Variant

BUILD_BASENAME = "build"
MANIFEST_BASENAME = "manifest"


class StampCheck:
    """doit ``uptodate`` callable for one variant; ``str()`` gives the last reasons.

    ``doit info build:NAME`` prints the reasons through ``str()``.
    """

    # doit asks every uptodate callable for its signature (for its optional ``task`` and
    # ``values`` arguments); saying it here spares inspect's work once per task.
    __signature__ = inspect.Signature()

    def __init__(self, session: BuildSession, variant: Variant) -> None:
        self.session = session
        self.variant = variant
        self.reasons: tuple[str, ...] = ()

    def __call__(self) -> bool:
        if self.session.options.force and self.variant.name not in self.session.outcomes:
            self.reasons = ("--force",)
            return False
        try:
            status = self.session.status(self.variant)
        except OSError as exc:
            self.reasons = (f"cannot check: {exc}",)
            return False
        self.reasons = tuple(r.message for r in status.reasons)
        return status.up_to_date

    def __str__(self) -> str:
        detail = "; ".join(self.reasons) if self.reasons else "up to date"
        return f"czbuild stamp of {self.variant.name}: {detail}"

    __repr__ = __str__


class ManifestCheck:
    """doit ``uptodate`` callable of the manifest task: the file equals what stamps say."""

    __signature__ = inspect.Signature()

    def __init__(self, session: BuildSession) -> None:
        self.session = session

    def __call__(self) -> bool:
        path = manifest_path(self.session.out_dir)
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            return False
        session = self.session
        changes = session.stamp_changes
        # Compared as data: parsing is C-fast, the indented canonical form is not (most of a
        # no-op build's own time for 80 artifacts). Same data means the file is current; a
        # copy re-indented by hand is then left as it is.
        try:
            on_disk = json.loads(current)
        except ValueError:
            return False
        known, listing = session.stamp_snapshot()
        if on_disk != render_manifest(session.out_dir, session.cache, known, listing):
            return False
        session.manifest_current_at = changes
        return True

    def __str__(self) -> str:
        return "czbuild manifest matches the stamps"


def order_variants(variants: Sequence[Variant], *, lanes: int = 1) -> list[Variant]:
    """Order variants for the scheduler.

    Variants that convert the same model stay adjacent, so a sequential run loads each model
    once. With ``lanes`` > 1 (``-j N`` runs N task threads) the model groups are dealt to N
    lanes (group i to lane i mod N) and the lanes are interleaved: the N threads start on N
    different models, and each worker then finishes its model's variants before it takes the
    next model. (Visiting the groups round-robin instead hands a worker a different model on
    almost every job, and a worker holds one loaded model: each job loaded its model again.)
    """
    groups: OrderedDict[tuple[str, Any], list[Variant]] = OrderedDict()
    for variant in variants:
        groups.setdefault(_model_of(variant), []).append(variant)
    queues: list[list[Variant]] = [[] for _ in range(max(1, min(lanes, len(groups))))]
    for i, group in enumerate(groups.values()):
        queues[i % len(queues)].extend(group)
    ordered: list[Variant] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def _model_of(variant: Variant) -> tuple[str, Any]:
    """Which model a variant converts, for ordering: its project and its (hashable) source spec.

    Cheaper than the worker pool's group (the fingerprint's non-licence inputs with their
    hashes, ``session._source_key``) and equal for the variants of one recipe's sweep; the
    order is only a schedule, the pool still groups by the fingerprint.
    """
    return (os.path.abspath(variant.project_dir), variant.spec.model)


def task_name(variant_name: str) -> str:
    """The doit sub-task name of a variant: its name with ``=`` spelled ``:``.

    doit rejects ``=`` in task names (its command line reads ``a=b`` as a variable), so
    ``nuclei@tile=512`` is the task ``build:nuclei@tile:512``.
    """
    return variant_name.replace("=", ":")


def build_task_dicts(session: BuildSession) -> Iterator[dict[str, Any]]:
    """The ``build:<variant>`` task dicts (sub-tasks of ``build``)."""
    seen: dict[str, str] = {}
    for variant in order_variants(session.variants, lanes=session.options.jobs):
        name = task_name(variant.name)
        if name in seen:
            raise ValueError(
                f"variants {seen[name]!r} and {variant.name!r} map to the same doit task "
                f"name {BUILD_BASENAME}:{name}; rename one of them"
            )
        seen[name] = variant.name
        artifact = os.path.join(session.out_dir, str(variant.output))
        yield {
            "name": name,
            "meta": {"czbuild_variant": variant.name, "czbuild_session": session},
            "doc": f"{variant.recipe} -> {variant.output}",
            "actions": [(session.build_variant, [variant])],
            "targets": [artifact],
            "uptodate": [StampCheck(session, variant)],
            "clean": [(session.clean_variant, [variant])],
            "verbosity": 2,
        }


def manifest_task_dict(session: BuildSession) -> dict[str, Any]:
    """The ``manifest`` task: regenerate ``<out>/manifest.json`` when it disagrees with stamps."""
    return {
        "basename": MANIFEST_BASENAME,
        "doc": f"regenerate {manifest_path(session.out_dir)} from the build stamps",
        "actions": [session.refresh_manifest],
        "targets": [str(manifest_path(session.out_dir))],
        "uptodate": [ManifestCheck(session)],
        "verbosity": 2,
    }


def doit_config(
    session_out_dir: Any,
    *,
    reporter: Any = BuildReporter,
    continue_: bool = True,
    backend: str = "sqlite3",
) -> dict[str, Any]:
    """``DOIT_CONFIG`` for the czbuild graph.

    doit's own state goes to ``<out>/.czbuild/doit.sqlite3`` (sqlite copes with two doit
    processes; czbuild's correctness does not depend on it). ``czbuild build`` passes
    :data:`czbuild.builder.doit_state.NAME` as ``backend``, a state file doit may fail to
    open or write without failing the build. Parallel runs use threads.
    """
    sdir = state_dir(Path(session_out_dir))
    sdir.mkdir(parents=True, exist_ok=True)
    return {
        "default_tasks": [BUILD_BASENAME, MANIFEST_BASENAME],
        "continue": continue_,
        "par_type": "thread",
        "reporter": reporter,
        "backend": backend,
        "dep_file": str(sdir / "doit.sqlite3"),
        "verbosity": 2,
    }


def task_creators(
    get_session: Callable[[], BuildSession],
) -> tuple[Callable[[], Iterator[dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """``(task_build, task_manifest)`` creator functions for a doit namespace.

    Args:
        get_session: Returns the session; called when doit loads the tasks.
    """

    def task_build() -> Iterator[dict[str, Any]]:
        """Build one artifact per recipe variant (czbuild)."""
        yield {"name": None, "doc": "build every recipe variant (czbuild)"}
        yield from build_task_dicts(get_session())

    def task_manifest() -> dict[str, Any]:
        """Regenerate the build manifest from the stamps (czbuild)."""
        return manifest_task_dict(get_session())

    return task_build, task_manifest
