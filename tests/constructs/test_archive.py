"""The deterministic, cached model.tar.gz packer (sagemaker_constructs._private.archive)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from sagemaker_constructs import ArchiveError
from sagemaker_constructs._private import archive
from tests.constructs.conftest import write_model_dir


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_model_dir(tmp_path / "model")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def pack_bytes(root: Path, cache: Path) -> bytes:
    return archive.pack_directory(root, cache=cache).path.read_bytes()


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def test_same_folder_packed_into_two_caches_gives_identical_bytes(folder: Path, tmp_path: Path) -> None:
    assert pack_bytes(folder, tmp_path / "a") == pack_bytes(folder, tmp_path / "b")


def test_a_copy_with_other_mtimes_and_modes_gives_identical_bytes(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for path in copy.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (copy / "model.joblib").chmod(0o600)
    assert pack_bytes(folder, tmp_path / "a") == pack_bytes(copy, tmp_path / "b")


def test_a_changed_file_changes_the_bytes(folder: Path, tmp_path: Path) -> None:
    before = pack_bytes(folder, tmp_path / "a")
    (folder / "model.joblib").write_bytes(b"weights-v2" * 100)
    assert pack_bytes(folder, tmp_path / "b") != before


def test_entries_are_sorted_depth_first_without_a_root_entry(folder: Path, cache: Path) -> None:
    (folder / "b.txt").write_text("b")
    (folder / "a.txt").write_text("a")
    assert names(pack_bytes(folder, cache)) == ["a.txt", "b.txt", "code", "code/inference.py", "model.joblib"]


def test_headers_carry_fixed_time_and_anonymous_owner(folder: Path, cache: Path) -> None:
    for info in members(pack_bytes(folder, cache)):
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (archive.FIXED_MTIME, 0, 0, "", "")


def test_modes_are_normalised(folder: Path, cache: Path) -> None:
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o700)
    (folder / "model.joblib").chmod(0o600)
    modes = {m.name: m.mode for m in members(pack_bytes(folder, cache))}
    assert modes == {"code": 0o755, "code/inference.py": 0o644, "model.joblib": 0o644, "run.sh": 0o755}


def test_gzip_header_has_no_time_and_no_name(folder: Path, cache: Path) -> None:
    data = pack_bytes(folder, cache)
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert (flags & 0x08, mtime) == (0, 0)  # FNAME unset, MTIME zero


@pytest.mark.parametrize(
    ("litter", "excluded"),
    [
        ("__pycache__/inference.cpython-311.pyc", "__pycache__"),
        ("code/helpers.pyc", "code/helpers.pyc"),
        (".git/HEAD", ".git"),
        (".DS_Store", ".DS_Store"),
        ("model.joblib~", "model.joblib~"),
        (".model.joblib.swp", ".model.joblib.swp"),
        (".idea/workspace.xml", ".idea"),
        (".vscode/settings.json", ".vscode"),
    ],
)
def test_litter_is_excluded(folder: Path, cache: Path, litter: str, excluded: str) -> None:
    path = folder / litter
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("litter")
    packed = names(pack_bytes(folder, cache))
    assert not [name for name in packed if name == excluded or name.startswith(f"{excluded}/")]
    assert "model.joblib" in packed


def test_extra_exclude_patterns_apply_to_names_and_paths(folder: Path, cache: Path) -> None:
    (folder / "notes.md").write_text("x")
    (folder / "code" / "scratch.py").write_text("x")
    result = archive.pack_directory(
        folder, excludes=(*archive.DEFAULT_EXCLUDES, "*.md", "code/scratch.py"), cache=cache
    )
    packed = names(result.path.read_bytes())
    assert "notes.md" not in packed
    assert "code/scratch.py" not in packed
    assert "code/inference.py" in packed


def test_symlink_out_of_the_folder_is_refused_naming_link_and_target(folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship")
    (folder / "config.txt").symlink_to(secret)
    with pytest.raises(ArchiveError, match=rf"'config.txt'.*{secret}"):
        archive.pack_directory(folder, cache=tmp_path / "cache")


def test_directory_symlink_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    (folder / "shared").symlink_to(tmp_path)
    with pytest.raises(ArchiveError, match=r"'shared'.*outside the model directory"):
        archive.pack_directory(folder, cache=tmp_path / "cache")


def test_symlink_inside_the_folder_is_stored_as_a_relative_link(folder: Path, cache: Path) -> None:
    (folder / "code" / "model.joblib").symlink_to(folder / "model.joblib")
    links = {m.name: m.linkname for m in members(pack_bytes(folder, cache)) if m.issym()}
    assert links == {"code/model.joblib": "../model.joblib"}


def test_dangling_symlink_is_refused(folder: Path, cache: Path) -> None:
    (folder / "missing").symlink_to(folder / "nowhere")
    with pytest.raises(ArchiveError, match="'missing' is dangling"):
        archive.pack_directory(folder, cache=cache)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="does not exist"):
        archive.pack_directory(tmp_path / "nope", cache=tmp_path / "cache")


def test_archive_larger_than_a_block_is_multi_member_and_reads_back(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "BLOCK_SIZE", 64 * 1024)
    payload = os.urandom(300 * 1024)
    (folder / "model.joblib").write_bytes(payload)
    data = pack_bytes(folder, cache)
    assert len(list(archive.iter_members(data))) > 1
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile("model.joblib")
        assert extracted is not None
        assert extracted.read() == payload


def test_every_gzip_member_has_a_zero_time_and_unknown_os(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "BLOCK_SIZE", 64 * 1024)
    (folder / "model.joblib").write_bytes(os.urandom(200 * 1024))
    for member in archive.iter_members(pack_bytes(folder, cache)):
        assert member[4:8] == b"\0\0\0\0"
        assert member[9] == 0xFF


def test_output_does_not_depend_on_the_number_of_threads(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "BLOCK_SIZE", 64 * 1024)
    (folder / "model.joblib").write_bytes(os.urandom(400 * 1024))
    entries = archive.scan(folder)
    one, four = io.BytesIO(), io.BytesIO()
    archive.write_archive(entries, one, workers=1)
    archive.write_archive(entries, four, workers=4)
    assert one.getvalue() == four.getvalue()


def test_gnu_tar_and_gzip_read_the_archive(folder: Path, cache: Path, tmp_path: Path) -> None:
    path = archive.pack_directory(folder, cache=cache).path
    subprocess.run(["gzip", "-t", str(path)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(path), "-C", str(out)], check=True)
    assert (out / "model.joblib").read_bytes() == (folder / "model.joblib").read_bytes()


def test_archive_decompresses_to_a_whole_number_of_tar_records(folder: Path, cache: Path) -> None:
    raw = gzip.decompress(pack_bytes(folder, cache))
    assert len(raw) % tarfile.RECORDSIZE == 0


def test_unchanged_folder_is_served_from_the_cache_without_packing(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = archive.pack_directory(folder, cache=cache)

    def must_not_pack(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged folder was packed again")

    monkeypatch.setattr(archive, "write_archive", must_not_pack)
    second = archive.pack_directory(folder, cache=cache)
    assert (first.cache_hit, second.cache_hit, second.path) == (False, True, first.path)


def test_touching_a_file_changes_the_fingerprint_but_not_the_bytes(folder: Path, cache: Path) -> None:
    first = archive.pack_directory(folder, cache=cache)
    before = first.path.read_bytes()
    os.utime(folder / "model.joblib", ns=(1, 1))
    second = archive.pack_directory(folder, cache=cache)
    assert second.fingerprint != first.fingerprint
    assert not second.cache_hit
    assert second.path.read_bytes() == before


def test_repacking_a_folder_removes_its_previous_archive(folder: Path, cache: Path) -> None:
    first = archive.pack_directory(folder, cache=cache)
    (folder / "model.joblib").write_bytes(b"weights-v3")
    archive.pack_directory(folder, cache=cache)
    assert not first.path.exists()


def test_no_temporary_file_is_left_behind(folder: Path, cache: Path) -> None:
    result = archive.pack_directory(folder, cache=cache)
    assert sorted(p.name for p in result.path.parent.iterdir()) == [archive.ARCHIVE_NAME]


def test_failed_packing_leaves_no_archive_in_the_cache(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(archive, "write_archive", fail)
    with pytest.raises(OSError, match="disk full"):
        archive.pack_directory(folder, cache=cache)
    assert not list(cache.rglob("*.tar.gz"))
    assert not list(cache.rglob("*.tmp"))


def test_cache_directory_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(archive.CACHE_ENV_VAR, str(tmp_path / "from-env"))
    assert archive.cache_dir() == tmp_path / "from-env"


def test_cache_directory_defaults_to_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(archive.CACHE_ENV_VAR, raising=False)
    assert archive.cache_dir() == Path("~/.cache/sagemaker-constructs").expanduser()


def test_file_growing_while_packed_is_refused(folder: Path, cache: Path) -> None:
    entries = archive.scan(folder)
    (folder / "model.joblib").write_bytes(b"x" * 5000)
    with pytest.raises(ArchiveError, match=r"'model\.joblib' changed size"):
        archive.write_archive(entries, io.BytesIO())
