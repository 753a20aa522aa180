"""Test doubles for the build layer (no TensorFlow): fake variants and a fake converter.

Not a test module (it defines no tests). Worker subprocesses import it by module name, so tests that use
subprocess workers put ``tests/`` on ``PYTHONPATH`` (see :func:`worker_env`).

Fake variants are real :class:`czbuild.recipe.variant.Variant` objects with real resolved specs
(:func:`make_variant`, :func:`respec`). The fake converter writes a small deterministic zip
(``model.json`` = the plain spec, ``model.model`` = the model file's bytes) atomically, like the
real convert layer, and appends one line per model load to ``<project>/loads.log`` so tests can
count loads. Its behaviour (``sleep: seconds``, ``fail: message``, ``verify: "fail"``,
``sleep_mid_write``) rides in the spec as a last postprocessing step ``{"op": "fake", ...}``
(:func:`with_fake`), so it is part of the spec digest like any real change; only the fake
converter reads it (it runs no ops).
With ``sleep_mid_write`` the converter signals through ``<project>/mid-write/<variant>`` that it
has written half of the artifact while it sleeps (:func:`variants_mid_write`), so a test
interrupts a write by handshake instead of by timing.

With ``job.verify`` set the fake writes through the real
:func:`czbuild.builder.verification.install_verified` (hidden temporary, verify, rename) with a
fake verifier: its record passes, or fails ``tiling.seams`` when ``fake.verify == "fail"`` (warns
when it is ``"warn"``), and
names the file it saw in ``details.seen``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import secrets
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from czbuild.recipe.digest import spec_digest
from czbuild.recipe.spec import MetadataSpec, RecipeSpec, SourceSpec
from czbuild.recipe.variant import Variant

TESTS_DIR = Path(__file__).resolve().parents[1]
BACKEND = "support.build_fakes:fake_convert"


FAKE_OP = "fake"


def respec(
    variant: Variant,
    *,
    metadata: dict | None = None,
    tile: int | None = None,
    fake: dict | None = None,
    **changes: Any,
) -> Variant:
    """``variant`` with spec fields changed (``metadata`` fields, ``tile``, fake behaviour).

    The digest is recomputed with the real :func:`czbuild.recipe.digest.spec_digest`.
    """
    spec = variant.spec
    if metadata:
        changes["metadata"] = dataclasses.replace(spec.metadata, **metadata)
    if tile is not None:
        changes["spatial_dims"] = (tile, tile)
    if fake is not None:
        kept = tuple(op for op in spec.postprocessing if op.get("op") != FAKE_OP)
        changes["postprocessing"] = (*kept, {"op": FAKE_OP, **fake})
    new = dataclasses.replace(spec, **changes)
    return dataclasses.replace(variant, spec=new, digest=spec_digest(new))


def fake_of(spec: RecipeSpec) -> dict:
    """The fake behaviour carried by ``spec`` (see the module docstring)."""
    for op in spec.postprocessing:
        if op.get("op") == FAKE_OP:
            return {k: v for k, v in op.items() if k != "op"}
    return {}


def make_variant(
    project: Path,
    recipe: str,
    *,
    tile: int | None = None,
    model: str = "models/m.bin",
    licence: str | None = "LICENSE",
) -> Variant:
    """A variant of ``recipe`` converting ``model`` (paths relative to ``project``)."""
    spec = RecipeSpec(
        name=recipe,
        model=SourceSpec(kind="keras", path=model),
        format="czann",
        format_version="2.1.0",
        opset=12,
        spatial_dims=(tile or 256, tile or 256),
        metadata=MetadataSpec(
            type="SingleClassSemanticSegmentation",
            model_name=recipe,
            classes=("bg", "fg"),
            license=licence,
        ),
    )
    name = f"{recipe}@tile={tile}" if tile else recipe
    vdir = f"tile={tile}" if tile else "default"
    inputs = [project / model] + ([project / licence] if licence else [])
    return Variant(
        recipe=recipe,
        name=name,
        recipe_file=project / "recipes" / f"{recipe}.yaml",
        project_dir=project,
        spec=spec,
        digest=spec_digest(spec),
        inputs=tuple(inputs),
        output=PurePosixPath(recipe, vdir, f"{recipe}.czann"),
        sweep=(("tile", str(tile)),) if tile else (),
        sweep_values=(("tile", tile),) if tile else (),
    )


def make_project(
    root: Path, recipes: dict[str, list[int]], *, models: dict[str, str] | None = None
) -> list[Variant]:
    """Create model/licence files and return the variants: ``{recipe: [tiles]}``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipes").mkdir(exist_ok=True)
    (root / "LICENSE").write_text("MIT\n")
    variants = []
    for recipe, tiles in recipes.items():
        model = (models or {}).get(recipe, f"models/{recipe}.bin")
        path = root / model
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"weights of " + recipe.encode())
        (root / "recipes" / f"{recipe}.yaml").write_text(f"name: {recipe}\n")
        for tile in tiles:
            variants.append(make_variant(root, recipe, tile=tile, model=model))
    return variants


REPO_DIR = TESTS_DIR.parent


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses that must import czbuild and this module."""
    path = os.environ.get("PYTHONPATH", "")
    parts = [str(TESTS_DIR), str(REPO_DIR), path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in parts if p), **extra}


TINY_FACTORY = """\
def build():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""

RECIPE_TEMPLATE = """\
# {name}: a tiny segmentation model, one artifact per tile
name: {name}
model:
  factory: ../models/tiny.py:build
format: czann
tile: {first}
metadata:
  type: SingleClassSemanticSegmentation
  classes: [bg, fg]
  min_overlap: [8, 8]
  license: ../LICENSE
sweep:
  tile: [{tiles}]
"""


def make_recipe_project(root: Path, n_recipes: int = 2, tiles: tuple[int, ...] = (32, 64)) -> Path:
    """A real czbuild project: ``n_recipes`` recipes sweeping ``tiles`` over a tiny factory."""
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "tiny.py").write_text(TINY_FACTORY)
    (root / "LICENSE").write_text("MIT License\n")
    for i in range(n_recipes):
        name = f"r{i:02d}"
        (root / "recipes" / f"{name}.yaml").write_text(
            RECIPE_TEMPLATE.format(name=name, first=tiles[0], tiles=", ".join(map(str, tiles)))
        )
    return root


def fake_convert(job: Any, cache: dict) -> dict:
    """The fake backend: see the module docstring."""
    variant = job.variant
    spec = variant.spec.to_plain()
    fake = fake_of(variant.spec)
    if fake.get("sleep") == "os-kill":  # simulate a worker killed by the OOM killer
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if fake.get("sleep"):
        from czbuild.progress import phase

        phase("fake work")
        time.sleep(float(fake["sleep"]))
    if fake.get("fail"):
        from czbuild.errors import ModelError

        raise ModelError(f"{variant.recipe_file}: {fake['fail']}")
    model_path = Path(variant.project_dir) / spec["model"]["path"]
    key = job.source_key
    if key not in cache:
        cache.clear()
        cache[key] = model_path.read_bytes()
        with open(Path(variant.project_dir) / "loads.log", "a") as log:
            log.write(f"{os.getpid()} {spec['model']['path']}\n")
    members = [
        ("model.json", json.dumps(spec, sort_keys=True).encode()),
        ("model.model", cache[key]),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
    data = buf.getvalue()

    def write(out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            if fake.get("sleep_mid_write"):
                # Handshake for tests that interrupt a write: say "half written" first.
                marker = signal_mid_write(Path(variant.project_dir), variant.name)
                time.sleep(float(fake["sleep_mid_write"]))
                marker.unlink()
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)

    from czbuild.builder.verification import install_verified

    verifier = (lambda path: fake_report(path, variant, fake)) if job.verify else None
    _, record = install_verified(Path(job.out_path), write, verifier)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "members": {n: hashlib.sha256(d).hexdigest() for n, d in members},
        "verification": record,
    }


FAKE_CHECKS = ("container.archive", "fidelity", "tiling.seams")


def fake_report(path: Path, variant: Any, fake: dict) -> dict:
    """A verification record shaped like :func:`czbuild.builder.verification.report_record`."""
    with zipfile.ZipFile(path) as zf:  # the file under verification is complete
        assert zf.testzip() is None
    failing = fake.get("verify") == "fail"
    checks = [
        {
            "name": name,
            "status": "passed",
            "figure": "ok",
            "message": "fake",
            "details": {"seen": path.name},
        }
        for name in FAKE_CHECKS
    ]
    if failing:
        checks[-1].update(
            status="failed", figure="max seam error 0.5", message="tiled inference differs (fake)"
        )
    if fake.get("verify") == "warn":
        checks[-1].update(
            status="warning",
            figure="per-tile statistics 0.17",
            message="per-tile statistics change the tiled output (fake)",
        )
    return {
        "path": str(PurePosixPath(variant.output)),
        "family": "czann",
        "version": "2.1.0",
        "ok": not failing,
        "summary": {
            s: sum(c["status"] == s for c in checks) for s in ("passed", "failed", "warning")
        },
        "metadata": {},
        "checks": checks,
        "settings": {"tolerance": 1e-5},
    }


def mid_write_dir(project: Path) -> Path:
    """Where the fake converter signals that it has written half of an artifact."""
    return project / "mid-write"


def signal_mid_write(project: Path, variant: str) -> Path:
    """Create ``mid-write/<variant>``: the temporary file holds half of the artifact now.

    The caller removes the returned marker before it writes the rest.
    """
    folder = mid_write_dir(project)
    folder.mkdir(exist_ok=True)
    marker = folder / variant.replace("/", "_")
    marker.touch()
    return marker


def variants_mid_write(project: Path) -> set[str]:
    """The variants whose artifact is half written right now (:func:`signal_mid_write`)."""
    folder = mid_write_dir(project)
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def with_fake(variants: list[Variant], **fake: Any) -> list[Variant]:
    """The same variants with ``fake`` behaviour (sleep, fail, verify) in their specs."""
    return [respec(variant, fake=dict(fake)) for variant in variants]


DRIVER = """
import sys
from pathlib import Path
from support.build_fakes import BACKEND, make_project, with_fake
from czbuild.builder import BuildOptions, build
root, out = Path(sys.argv[1]), Path(sys.argv[2])
sleep, jobs, wait = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
variants = make_project(root, {"a": [256, 512, 768, 1024], "b": [256, 512]})
variants = with_fake(variants, sleep=sleep / 2, sleep_mid_write=sleep / 2)
report = build(variants, BuildOptions(out_dir=out, backend=BACKEND, jobs=jobs, lock_timeout=wait))
sys.exit(0 if report.ok else 1)
"""


def driver_command(
    root: Path, out: Path, *, sleep: float, jobs: int = 1, wait: float = 60.0
) -> list[str]:
    """argv of a process that builds the 6 fake variants of :data:`DRIVER` with worker processes."""
    import sys

    return [sys.executable, "-c", DRIVER, str(root), str(out), str(sleep), str(jobs), str(wait)]


def fake_build(project: Path, *names: str) -> None:
    """Build ``project``'s recipes (default: all) with the fake converter, in this process.

    The build runs through the real build layer, so stamps, manifest and lock are what a
    real build writes; only the conversion is faked (no TensorFlow).
    """
    import io

    from czbuild.builder import BuildOptions, build
    from czbuild.recipe import load_variants

    variants = load_variants(list(names) or None, project_dir=project)
    report = build(
        variants,
        BuildOptions(out_dir=project / "build", backend=BACKEND, in_process=True),
        out=io.StringIO(),
    )
    assert report.ok, report.summary.failed
