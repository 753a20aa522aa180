"""Tests for czbuild.builder.hashing: content hashes with the stat shortcut."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from czbuild.builder import hashing
from czbuild.builder.hashing import HashCache


def _age(path: Path, seconds: float = 10.0) -> None:
    """Move a file's mtime into the past so its cache entry is trusted (outside the racy window)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_file_hash_is_sha256_of_content(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"abc" * 1000)
    assert HashCache().file_sha256(f) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    _age(f)
    cache = HashCache(tmp_path / "cache.json")
    first = cache.file_sha256(f)
    assert cache.file_sha256(f) == first
    assert cache.reads == 1


def test_cache_survives_a_new_process_via_save(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    _age(f)
    cache = HashCache(tmp_path / "cache.json")
    digest = cache.file_sha256(f)
    cache.save()
    again = HashCache(tmp_path / "cache.json")
    assert again.file_sha256(f) == digest
    assert again.reads == 0


@pytest.mark.parametrize(
    "change, same_hash",
    [
        pytest.param(lambda f: os.utime(f), True, id="touch"),
        pytest.param(lambda f: f.write_bytes(f.read_bytes()), True, id="rewrite-same-bytes"),
        pytest.param(lambda f: f.write_bytes(b"other!!"), False, id="same-size-new-bytes"),
        pytest.param(lambda f: f.write_bytes(b"longer content"), False, id="new-size"),
    ],
)
def test_stat_change_rereads_and_hash_follows_content(tmp_path: Path, change, same_hash) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    _age(f)
    cache = HashCache()
    before = cache.file_sha256(f)
    change(f)
    after = cache.file_sha256(f)
    assert cache.reads == 2
    assert (after == before) is same_hash


def test_recently_modified_file_is_not_trusted(tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"fresh")  # mtime is now: inside the racy window
    cache = HashCache()
    cache.file_sha256(f)
    cache.file_sha256(f)
    assert cache.reads == 2


def test_racy_window_constant_is_positive() -> None:
    assert hashing.RACY_WINDOW_NS > 0


def _make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


TREE = {
    "saved_model.pb": b"graph",
    "variables/variables.index": b"idx",
    "variables/variables.data-00000-of-00001": b"data",
}


def test_tree_hash_independent_of_creation_order_and_times(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _make_tree(a, TREE)
    _make_tree(b, dict(reversed(list(TREE.items()))))
    os.utime(b / "saved_model.pb", ns=(0, 0))
    assert HashCache().tree_sha256(a) == HashCache().tree_sha256(b)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: (r / "variables/variables.index").write_bytes(b"IDX"), id="content"),
        pytest.param(
            lambda r: (r / "variables/variables.index").rename(r / "variables/x.index"), id="rename"
        ),
        pytest.param(
            lambda r: (r / "assets").mkdir() or (r / "assets/v.txt").write_text("v"), id="new-file"
        ),
        pytest.param(lambda r: (r / "saved_model.pb").unlink(), id="removed-file"),
    ],
)
def test_tree_hash_changes_with_content_or_names(tmp_path: Path, mutate) -> None:
    root = tmp_path / "sm"
    _make_tree(root, TREE)
    before = HashCache().tree_sha256(root)
    mutate(root)
    assert HashCache().tree_sha256(root) != before


def test_tree_hash_matches_recipe_pin_definition(tmp_path: Path) -> None:
    """The build's tree digest is the one a recipe's model.sha256 pin uses."""
    digest_mod = pytest.importorskip("czbuild.recipe.digest")
    root = tmp_path / "sm"
    _make_tree(root, TREE)
    assert HashCache().path_sha256(root) == digest_mod.source_sha256(root)
    assert HashCache().path_sha256(root / "saved_model.pb") == digest_mod.source_sha256(
        root / "saved_model.pb"
    )


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HashCache().path_sha256(tmp_path / "nope")


def test_save_prunes_vanished_files_and_is_valid_json(tmp_path: Path) -> None:
    f, g = tmp_path / "f", tmp_path / "g"
    f.write_bytes(b"1")
    g.write_bytes(b"2")
    cache = HashCache(tmp_path / "cache.json")
    cache.file_sha256(f)
    cache.file_sha256(g)
    g.unlink()
    cache.save()
    import json

    entries = json.loads((tmp_path / "cache.json").read_text())["entries"]
    assert list(entries) == [str(f)]


def test_corrupt_cache_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "cache.json").write_text("{not json")
    f = tmp_path / "f"
    f.write_bytes(b"x")
    assert HashCache(tmp_path / "cache.json").file_sha256(f) == hashlib.sha256(b"x").hexdigest()
