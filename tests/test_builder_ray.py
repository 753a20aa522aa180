"""Builds on a Ray cluster (``czbuild build --ray``, :mod:`czbuild.builder.ray_executor`).

One local two-node cluster (``ray.cluster_utils.Cluster``, one CPU each, small object store)
serves the cluster tests (marked slow); they skip when Ray is not installed (CI installs the
``ray`` extra). The cluster's workers see ``tests/`` on their path, for the fake backends.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest

from support.build_fakes import (
    REPO_DIR,
    TESTS_DIR,
    fake_convert,
    make_project,
    with_fake,
    worker_env,
)
from support.cli import run_cli
from support.onnx_models import unet_onnx

RECIPE = """
name: cells
model:
  onnx: ../models/cells.onnx
  channels_first: true
format: czann
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [12, 12]
  license: ../LICENSE
sweep:
  tile: [32, 48]
"""


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    store = 100 * 1024**2
    with pytest.MonkeyPatch.context() as mp:
        path = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p)
        mp.setenv("PYTHONPATH", path)  # inherited by the raylets' worker processes
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "object_store_memory": store,
                "include_dashboard": False,
            },
        )
        cluster.add_node(num_cpus=1, object_store_memory=store)
        try:
            yield cluster.address
        finally:
            cluster.shutdown()


def _files(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (folders in ``skip`` left out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(skip):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _executor(address: str, scratch: Path, backend: str, **settings: object) -> Any:
    from czbuild.builder.ray_executor import RayExecutor, RaySettings

    return RayExecutor(
        RaySettings(address=address, scratch=str(scratch), **settings),  # type: ignore[arg-type]
        backend=backend,
    )


@pytest.mark.slow
def test_ray_build_is_byte_identical_to_a_local_build(cluster_address, tmp_path) -> None:
    """A real (ONNX) recipe: same artifacts, manifest and lock; nothing written in the project."""
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    (root / "models").mkdir()
    onnx.save(unet_onnx(), root / "models" / "cells.onnx")
    (root / "LICENSE").write_text("MIT License\n")
    (root / "recipes" / "cells.yaml").write_text(RECIPE)

    run_cli("build", "--out", str(tmp_path / "local"), cwd=root, check=True)
    before = _files(root)
    result = run_cli(
        "build", "--out", str(tmp_path / "ray"), "--ray", cluster_address, cwd=root, check=True
    )
    assert "2 built" in result.stdout, result.stdout
    assert result.stdout.count(": on Ray node ") == 2, result.stdout  # really on the cluster
    assert _files(root) == before  # the lock too: the same bytes leave it unchanged

    local = _files(tmp_path / "local", skip=(".czbuild/",))
    remote = _files(tmp_path / "ray", skip=(".czbuild/",))
    assert sorted(local) == [
        "cells/tile=32/cells.czann",
        "cells/tile=48/cells.czann",
        "manifest.json",
    ]
    assert remote == local  # artifacts and manifest (stamps' inputs, toolchain, verification)

    status = run_cli("status", "--out", str(tmp_path / "ray"), cwd=root, check=True)
    assert "0 out of date" in status.stdout, status.stdout

    # czbuild check rebuilds on the cluster too, and the lock holds
    check = run_cli("check", "--ray", cluster_address, cwd=root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert _files(root) == before

    # doit users: `doit ray=ADDRESS` builds the same bytes
    shutil.copy(REPO_DIR / "dodo.py", root / "dodo.py")
    doit = subprocess.run(
        [
            sys.executable,
            "-m",
            "doit",
            "-n",
            "2",
            f"out={tmp_path / 'doit'}",
            f"ray={cluster_address}",
        ],
        cwd=root,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert doit.returncode == 0, doit.stdout + doit.stderr
    assert "2 built" in doit.stdout, doit.stdout
    assert doit.stdout.count(": on Ray node ") == 2, doit.stdout  # ray= reached the cluster
    assert _files(tmp_path / "doit", skip=(".czbuild/",)) == local


@pytest.mark.slow
def test_killed_worker_is_retried_and_nothing_partial_is_installed(
    cluster_address, tmp_path
) -> None:
    from czbuild.builder import BuildOptions, build
    from czbuild.builder.pool import InProcessExecutor
    from support.ray_fakes import BACKEND

    marker = tmp_path / "killed-once"

    def variants_in(project: Path) -> list:
        variants = make_project(project, {"a": [32, 64], "b": [32]})
        variants[0] = with_fake([variants[0]], kill_once=str(marker))[0]  # a@tile=32 dies once
        return variants

    project = tmp_path / "p"
    variants = variants_in(project)
    scratch = tmp_path / "cluster-scratch"
    report = build(
        variants,
        BuildOptions(out_dir=tmp_path / "ray", ray=cluster_address, backend=BACKEND),
        executor=_executor(cluster_address, scratch, BACKEND),  # type: ignore[arg-type]
    )
    assert report.ok, report.summary.failed
    assert marker.exists()  # the first attempt really was killed
    assert not (project / "loads.log").exists()  # the converter ran in scratch folders only
    assert list(scratch.glob("czbuild-ray/*")) == []  # and they are gone

    reference = build(
        variants_in(tmp_path / "p2"),
        BuildOptions(out_dir=tmp_path / "local"),
        executor=InProcessExecutor(fake_convert),
    )
    assert reference.ok
    # the artifacts (the fake's verification record names its PID-tagged temporary file)
    skip = (".czbuild/", "manifest.json")
    built = _files(tmp_path / "ray", skip=skip)
    assert len(built) == 3 and built == _files(tmp_path / "local", skip=skip)
    assert not [p for p in (tmp_path / "ray").rglob("*") if p.name.startswith(".") and p.is_file()]


@pytest.mark.slow
def test_toolchain_mismatch_is_refused_before_converting(
    cluster_address, tmp_path, monkeypatch
) -> None:
    from czbuild.builder import BuildOptions, build, ray_executor
    from support.build_fakes import BACKEND

    real = ray_executor.coordinator_toolchain
    monkeypatch.setattr(
        ray_executor,
        "coordinator_toolchain",
        lambda: {**real(), "tensorflow": "0.0.0-coordinator"},
    )
    project = tmp_path / "p"
    variants = make_project(project, {"a": [32]})
    report = build(
        variants,
        BuildOptions(out_dir=tmp_path / "ray", ray=cluster_address, backend=BACKEND),
        executor=_executor(cluster_address, tmp_path / "scratch", BACKEND),  # type: ignore[arg-type]
        out=open(os.devnull, "w"),  # noqa: SIM115
    )
    message = report.summary.failed["a@tile=32"]
    # both nodes were tried (the second after the first was refused), then one line
    assert ": no Ray node has the coordinator's toolchain (2 refused): " in message, message
    assert message.count("has a different toolchain") == 2 and "\n" not in message, message
    assert "(coordinator: 0.0.0-coordinator)" in message
    assert not (tmp_path / "ray" / "a").exists()
    assert not (project / "loads.log").exists()


def test_ray_option_without_ray_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    make_project(tmp_path, {"a": [32]})
    result = run_cli("build", "--ray", "local", cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [
        "czbuild: error: --ray needs Ray, which is not installed: pip install 'czbuild[ray]'"
    ]


def test_toolchain_problem_names_node_and_versions() -> None:
    from czbuild.builder.ray_executor import toolchain_problem

    same = {"tensorflow": "2.21.0", "czbuild_code": "ab"}
    assert toolchain_problem(same, dict(same), "n1") == ""
    line = toolchain_problem(same, {"tensorflow": "2.20.0", "czbuild_code": "ab"}, "10.0.0.7")
    assert line.startswith("Ray node 10.0.0.7 has a different toolchain: tensorflow 2.20.0 ")
    assert "(coordinator: 2.21.0)" in line and "\n" not in line


def test_memory_estimate_grows_with_model_and_tile() -> None:
    from czbuild.builder.ray_executor import memory_estimate

    small = memory_estimate(1_000, (256, 256))
    assert small > 1 << 30
    assert memory_estimate(31_000_000, (256, 256)) > small
    assert memory_estimate(1_000, (1024, 1024)) > small
    assert memory_estimate(1_000, None) == memory_estimate(1_000, (512, 512))


@pytest.mark.slow  # importing Ray takes ~2.5 s
def test_actor_layout_holds_exactly_the_jobs_files(tmp_path) -> None:
    """A job never sees a file an earlier job of the same actor shipped (no stale inputs)."""
    pytest.importorskip("ray")
    from czbuild.builder.ray_executor import ConversionActor

    actor = ConversionActor("support.build_fakes:fake_convert", scratch=str(tmp_path))
    contents = {"a": b"def build(): ...\n", "b": b"def build(): pass\n", "lic": b"MIT\n"}
    digests = {}
    for key, data in contents.items():
        digests[key] = hashlib.sha256(data).hexdigest()
        (actor.store / digests[key]).write_bytes(data)  # already fetched: no object store
    actor._lay_out([("models/a.py", digests["a"], None), ("LICENSE", digests["lic"], None)])
    assert _files(actor.tree) == {"LICENSE": digests["lic"], "models/a.py": digests["a"]}
    (actor.tree / "models" / "weights.bin").write_bytes(b"written by the factory")
    actor._lay_out([("models/b.py", digests["b"], None), ("LICENSE", digests["lic"], None)])
    assert _files(actor.tree) == {"LICENSE": digests["lic"], "models/b.py": digests["b"]}
    actor.remove_scratch()
    assert not actor.scratch.exists()


@pytest.mark.slow
def test_refused_node_is_avoided_for_the_rest_of_the_build(cluster_address, tmp_path) -> None:
    """The first actor's node has another toolchain: its job and the next move elsewhere."""
    from czbuild.builder import BuildOptions, build
    from support.ray_fakes import BACKEND, FirstNodeRefused

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    executor = _executor(cluster_address, scratch, BACKEND)
    executor.actor_class = FirstNodeRefused
    variants = make_project(tmp_path / "p", {"a": [32, 64], "b": [32]})
    report = build(
        variants,
        BuildOptions(out_dir=tmp_path / "ray", ray=cluster_address, backend=BACKEND),
        executor=executor,
        out=open(os.devnull, "w"),  # noqa: SIM115
    )
    assert report.ok, report.summary.failed
    bad = (scratch / "refused-node").read_text()
    assert list(executor._refused) == [bad]  # refused once, never placed there again
    assert executor.size == 1  # the actors shrank to what the accepted node holds
    assert "0.0.0-other-node" in executor._refused[bad]


@pytest.mark.slow
def test_more_actors_than_the_cluster_holds_do_not_wait_forever(cluster_address, tmp_path) -> None:
    """``-j 3`` on two 1-CPU nodes: the third actor gets the CPU of one that went idle."""
    from czbuild.builder import BuildOptions, build
    from czbuild.builder.ray_executor import RayExecutor, RaySettings
    from support.ray_fakes import BACKEND

    variants = make_project(tmp_path / "p", {"a": [32], "b": [32], "c": [32]})
    settings = RaySettings(address=cluster_address, scratch=str(tmp_path / "s"))
    executor = RayExecutor(settings, size=3, backend=BACKEND)
    stream = io.StringIO()
    done: dict[str, Any] = {}
    options = BuildOptions(out_dir=tmp_path / "ray", ray=cluster_address, backend=BACKEND, jobs=3)
    builder = threading.Thread(
        target=lambda: done.update(report=build(variants, options, executor=executor, out=stream))
    )
    builder.start()
    builder.join(timeout=180)
    if builder.is_alive():
        executor.terminate()
        builder.join(timeout=30)
        pytest.fail(f"the build waited for a Ray node forever:\n{stream.getvalue()}")
    report = done["report"]
    assert report.ok and len(report.summary.built) == 3, report.summary.failed
    assert "retired an idle Ray actor to make room for this one" in stream.getvalue()


@pytest.mark.slow
def test_job_over_its_memory_estimate_fails_that_variant_with_the_figures(
    cluster_address, tmp_path
) -> None:
    from czbuild.builder import BuildOptions, build
    from support.build_fakes import respec
    from support.ray_fakes import BACKEND

    log = tmp_path / "hog.log"
    project = tmp_path / "p"
    variants = make_project(project, {"a": [32], "b": [32]})
    variants[0] = respec(variants[0], fake={"hog": 700 * 1024**2, "hog_log": str(log)})
    estimate = 400 * 1024**2  # the test's override of memory_estimate
    report = build(
        variants,
        BuildOptions(out_dir=tmp_path / "ray", ray=cluster_address, backend=BACKEND),
        executor=_executor(cluster_address, tmp_path / "scratch", BACKEND, memory=estimate),
        out=open(os.devnull, "w"),  # noqa: SIM115
    )
    assert sorted(report.summary.failed) == ["a@tile=32"]  # b built: not the build
    message = report.summary.failed["a@tile=32"]
    assert "went over its memory estimate on Ray node " in message, message
    assert "estimate 0.39 GiB" in message and "use a smaller tile" in message
    peak = re.search(r": peak ([0-9.]+) GiB resident, estimate", message)
    assert peak and float(peak.group(1)) > 0.68, message  # the 700 MB it held
    assert log.read_text().count("\n") == 1  # one attempt: not retried as a worker death
    assert (tmp_path / "ray" / "b").exists() and not (tmp_path / "ray" / "a").exists()


@pytest.mark.slow
def test_phases_and_the_queue_stream_back_to_the_coordinator(cluster_address, tmp_path) -> None:
    """A job's phase reaches the coordinator while it runs; a waiting job hears the queue."""
    from czbuild.builder.protocol import Job
    from czbuild.builder.ray_executor import RayExecutor, RaySettings
    from support.ray_fakes import BACKEND

    seen = tmp_path / "phase-seen"
    a, b = make_project(tmp_path / "p", {"a": [32], "b": [32]})
    a = with_fake([a], handshake=str(seen))[0]
    executor = RayExecutor(
        RaySettings(address=cluster_address, scratch=str(tmp_path / "s")), size=1, backend=BACKEND
    )
    heard: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
    results: dict[str, Any] = {}
    second = threading.Thread(target=lambda: run("b", b))

    def run(name: str, variant: Any) -> None:
        job = Job(variant, str(tmp_path / "out" / name / "x.czann"), source_key=(name,))

        def events(kind: str, text: str) -> None:
            heard[name].append((kind, text))
            if (name, text) == ("a", "waiting for the coordinator"):
                second.start()  # b needs the actor a keeps busy
            if (name, kind) == ("b", "queued"):
                seen.write_text("")  # a may finish now

        results[name] = executor.run(job, name, events)

    try:
        run("a", a)
        second.join(timeout=120)  # b runs after a, in its own thread
    finally:
        executor.close()
    assert results["a"].ok and results["b"].ok, results
    assert ("phase", "waiting for the coordinator") in heard["a"]
    assert ("queued", "1 job(s) waiting for 1/1 Ray actor(s)") in heard["b"], heard["b"]
    assert any(t.startswith("on Ray node ") for k, t in heard["b"] if k == "note")


def test_progress_lines_show_the_queue_and_the_node() -> None:
    import io

    from czbuild.builder.reporter import BuildReporter

    out = io.StringIO()
    reporter = BuildReporter(out, phase_after=0)
    reporter.event("a@tile=32", "queued", "3 job(s) waiting for 2/2 Ray actor(s)")
    reporter.event("b@tile=32", "queued", "")
    reporter.event("a@tile=32", "note", "on Ray node 10.0.0.7 (gpu1, node 52729f14ef42)")
    assert out.getvalue().splitlines() == [
        "queued   a@tile=32  (3 job(s) waiting for 2/2 Ray actor(s))",
        "queued   b@tile=32",
        "         a@tile=32: on Ray node 10.0.0.7 (gpu1, node 52729f14ef42)",
    ]
