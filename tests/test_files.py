"""czbuild.files: the one file/tree hasher, atomic writer and the two canonical JSON forms."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from czbuild.files import (
    atomic_write,
    digest_json,
    file_json,
    file_sha256,
    path_sha256,
    read_json,
    tree_sha256,
    write_json,
)

PACKAGE = Path(__file__).resolve().parents[1] / "czbuild" / "files"


def _tree(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "assets").mkdir()  # empty folders do not count
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables" / "variables.index").write_bytes(b"index")
    return root


def test_tree_digest_bytes_are_pinned(tmp_path: Path) -> None:
    # model.sha256 pins in users' recipes depend on these exact bytes.
    lines = (
        "saved_model.pb\0" + hashlib.sha256(b"graph").hexdigest() + "\n"
        "variables/variables.index\0" + hashlib.sha256(b"index").hexdigest() + "\n"
    )
    expected = hashlib.sha256(lines.encode()).hexdigest()
    assert expected == "aa0fbec5422db840ef6b26478899d1ec9112e9c432cf54aa21141430051c1ea9"
    assert tree_sha256(_tree(tmp_path / "sm")) == expected
    assert path_sha256(tmp_path / "sm") == expected


def test_tree_digest_uses_the_given_file_hash(tmp_path: Path) -> None:
    root = _tree(tmp_path / "sm")
    seen: list[Path] = []

    def counting(path: Path) -> str:
        seen.append(path)
        return file_sha256(path)

    assert tree_sha256(root, file_hash=counting) == tree_sha256(root)
    assert sorted(p.name for p in seen) == ["saved_model.pb", "variables.index"]


def test_file_digest(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"x" * (3 << 20))
    assert file_sha256(f) == path_sha256(f) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_the_two_json_forms_are_byte_exact() -> None:
    value = {"b": [1, 2.5], "a": "é", "c": None}
    assert digest_json(value) == '{"a":"\\u00e9","b":[1,2.5],"c":null}'
    assert file_json(value) == (
        '{\n  "a": "é",\n  "b": [\n    1,\n    2.5\n  ],\n  "c": null\n}\n'.encode()
    )


@pytest.mark.parametrize("form", [digest_json, file_json], ids=["digest", "file"])
def test_json_forms_refuse_nan(form) -> None:
    with pytest.raises(ValueError):
        form({"x": float("nan")})


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "fast"])
def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "a" / "b.json"
    write_json(target, {"k": 1}, durable=durable)
    assert read_json(target) == {"k": 1}
    atomic_write(target, b"second", durable=durable)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    class Boom:
        def __bytes__(self) -> bytes:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, Boom())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_atomic_write_error_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OSError) as info:
        atomic_write(blocker / "x.json", b"{}")
    assert "file" in str(info.value)


def test_read_json_treats_unreadable_as_absent(tmp_path: Path) -> None:
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_bytes(b"{not json")
    assert read_json(tmp_path / "bad.json") is None


def test_files_is_a_low_layer() -> None:
    """czbuild.files imports nothing of czbuild but itself and czbuild.errors."""
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("czbuild"):
                    assert name.startswith(("czbuild.files", "czbuild.errors")), (module, name)
