"""Test doubles for the release tests (no TensorFlow): a realistic fake converter and projects.

Not a test module (it defines no tests). The fake converter writes *real* model files with
czbuild's own writers: a CZANN with canonical ``model.json`` and a small, valid ONNX payload,
or a legacy 3.0.0 CZMODEL whose payload is a deterministic zip that looks like a SavedModel.
The payload's weights derive from the model source file's bytes, so a changed model gives
different artifacts, exactly like the real converter.

``CZBUILD_FAKE_MUTATE`` (read at conversion time) makes the converter behave like a changed
or non-deterministic toolchain: ``initializer`` (one ONNX weight differs), ``savedmodel``
(``saved_model.pb`` differs), ``model_name`` (the ModelName metadata differs), or fail:
``fail:<recipe>`` (that recipe's conversions raise), ``verify-fail:<recipe>`` (that recipe's
artifacts fail a fake verification through the real ``install_verified``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = TESTS_DIR.parent
BACKEND = "support.release_fakes:release_convert"
MUTATE_ENV = "CZBUILD_FAKE_MUTATE"
EXAMPLE_VARIANTS = [
    "cells_onnx",
    "denoise",
    "legacy_seed",
    "nuclei@tile=128",
    "nuclei@tile=256",
    "nuclei@tile=512",
    "volume_3d",
]


def onnx_payload(
    weights: np.ndarray,
    h: int,
    w: int,
    *,
    opset: int = 18,
    producer: str = "czbuild",
    doc: str = "",
) -> bytes:
    """A valid ONNX model: ``output = input * W`` with ``W`` of shape (1, 1, 1, n)."""
    from onnx import TensorProto, helper, numpy_helper

    n = weights.size
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, h, w, 1])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, h, w, n])
    init = numpy_helper.from_array(np.asarray(weights, np.float32).reshape(1, 1, 1, n), "W")
    node = helper.make_node("Mul", ["input", "W"], ["output"], name="node_0")
    graph = helper.make_graph([node], "czbuild", [x], [y], [init])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name=producer,
        doc_string=doc,
    )
    model.ir_version = 7 if opset <= 12 else 8
    return model.SerializeToString(deterministic=True)


def savedmodel_payload(seed: bytes, *, graph_suffix: bytes = b"") -> bytes:
    """A deterministic zip shaped like a SavedModel (not loadable by TensorFlow)."""
    from czbuild.formats.ziputil import zip_bytes

    return zip_bytes(
        [
            ("saved_model.pb", b"fake graph " + seed + graph_suffix),
            ("variables/variables.data-00000-of-00001", hashlib.sha256(seed).digest() * 4),
            ("variables/variables.index", b"index " + seed[:8]),
        ]
    )


def _weights(source: bytes, n: int) -> np.ndarray:
    digest = hashlib.sha256(source).digest()
    return np.frombuffer(digest[: 4 * n], dtype=np.uint32).astype(np.float32) / 2**32


def release_convert(job: Any, cache: dict) -> dict:
    """The fake backend (see the module docstring); returns sha256 and member hashes."""
    from czbuild.builder.request import build_metadata
    from czbuild.formats import write_czann, write_czmodel
    from czbuild.formats.czann import CzannMetadata

    variant = job.variant
    spec = variant.spec
    project = Path(variant.project_dir)
    source = (project / spec.model.path).read_bytes()
    mutate = os.environ.get(MUTATE_ENV, "")
    if mutate == f"fail:{variant.recipe}":
        from czbuild.errors import ModelError

        raise ModelError(f"{variant.recipe_file}: the fake converter was told to fail")
    metadata = build_metadata(spec)
    licence = (project / spec.metadata.license).read_bytes() if spec.metadata.license else None
    if mutate == "model_name":
        metadata = dataclasses.replace(
            metadata, **{"model_name" if spec.format == "czann" else "name": "Mutated"}
        )
    *depth, h, w = spec.spatial_dims or (64, 64)
    if depth and spec.format == "czann":  # the fake writes 2D payloads: a 3D recipe gets its 2D cut
        md = metadata
        assert isinstance(md, CzannMetadata)
        metadata = dataclasses.replace(
            md,
            min_overlap=md.min_overlap[-2:] if md.min_overlap else None,
            scaling=md.scaling[:2] if md.scaling else None,
        )
    out = Path(job.out_path)
    if spec.format == "czann":
        n = len(spec.metadata.classes or ()) or 1
        weights = _weights(source, n)
        if mutate == "initializer":
            weights = weights.copy()
            weights[0] += 0.5
        payload = onnx_payload(weights, h, w, opset=spec.opset or 12)
        metadata = dataclasses.replace(metadata, input_shape=(h, w, 1), output_shape=(h, w, n))
        write_czann(out, metadata, payload, licence)
    else:
        suffix = b" (other process)" if mutate == "savedmodel" else b""
        write_czmodel(out, metadata, savedmodel_payload(source, graph_suffix=suffix), licence)
    data = out.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {i.filename: hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist()}
    result = {"sha256": hashlib.sha256(data).hexdigest(), "members": members}
    if mutate == f"verify-fail:{variant.recipe}" and job.verify:
        from czbuild.builder.verification import install_verified
        from support.build_fakes import fake_report

        out.unlink()
        _, result["verification"] = install_verified(
            out,
            lambda tmp: tmp.write_bytes(data),
            lambda path: fake_report(path, variant, {"verify": "fail"}),
        )
    return result


def fake_options(**kwargs: Any) -> Any:
    """``BuildOptions`` that convert with :func:`release_convert` in this process."""
    from czbuild.builder import BuildOptions

    return BuildOptions(backend=BACKEND, in_process=True, **kwargs)


def patch_cli_backend(monkeypatch: Any) -> None:
    """Make every ``BuildOptions(...)`` the CLI creates use the fake converter in-process."""
    import czbuild.builder

    real = czbuild.builder.BuildOptions

    def options(*args: Any, **kwargs: Any) -> Any:
        kwargs.update(backend=BACKEND, in_process=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(czbuild.builder, "BuildOptions", options)


def copy_example_project(root: Path) -> Path:
    """The repository's bundled recipes, configs and models, copied to ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("recipes", "configs", "models"):
        shutil.copytree(
            REPO_DIR / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return root


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity and dates; returns stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    }
    proc = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout


def git_init(root: Path) -> None:
    """Make ``root`` a git repository with everything committed."""
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("build/\ndist/\n__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")


def cli(args: list[str], monkeypatch: Any, *, env: dict[str, str] | None = None) -> Any:
    """Run the czbuild CLI in this process with the fake converter; returns click's Result."""
    from click.testing import CliRunner

    from czbuild.cli import cli as group

    patch_cli_backend(monkeypatch)
    return CliRunner().invoke(group, args, env=env, catch_exceptions=False)
