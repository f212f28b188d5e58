"""Version folders are verified before they are read: every corruption is refused readably."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.cli import main
from vidrec.recommender import Recommender
from vidrec.versions import LATEST, MANIFEST, ArtifactError, file_digests, resolve_version


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("versions") / "model"
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


@pytest.fixture
def model(saved, tmp_path):
    """A private copy of the saved model directory, free to corrupt."""
    return shutil.copytree(saved, tmp_path / "model")


def version_of(model) -> str:
    return (model / LATEST).read_text().strip()


def artifact_files(saved) -> list[str]:
    version = saved / version_of(saved)
    return sorted(p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file() and p.name != MANIFEST)


def test_manifest_lists_every_file_and_its_digest(saved) -> None:
    version = saved / version_of(saved)
    manifest = json.loads((version / MANIFEST).read_text())
    assert manifest["files"] == file_digests(version)
    names = set(manifest["files"])
    assert {"data/videos.parquet", "data/users.parquet", "config.json"} <= names
    assert any(n.endswith(".index") for n in names) and any(n.endswith(".pt") for n in names)
    rec = Recommender.load(saved)
    assert len(rec.recommend("u0", k=3)) == 3


def test_files_written_after_the_save_are_not_part_of_the_version(model) -> None:
    (model / version_of(model) / "evaluation.json").write_text("{}")
    Recommender.load(model)


def _flip(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path) -> None:
    path.write_bytes(b"\x00garbage" * 64)


def _empty(path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_flip, _truncate, _garbage, _empty, "delete"])
def test_every_damaged_artifact_is_refused_naming_the_file(saved, model, damage) -> None:
    version = model / version_of(model)
    for name in artifact_files(saved):
        target = version / name
        backup = target.read_bytes()
        if damage == "delete":
            target.unlink()
        else:
            damage(target)
        if target.exists() and target.read_bytes() == backup:
            continue  # e.g. an empty file stays empty
        with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
            Recommender.load(model)
        target.write_bytes(backup)
    Recommender.load(model)  # restored: loads again


def test_a_valid_file_with_other_content_is_refused(model) -> None:
    """A videos table that reads fine but says something else: only the digest can tell."""
    table = model / version_of(model) / "data" / "videos.parquet"
    videos = pl.read_parquet(table)
    videos.with_columns(pl.col("creator_id").shift(1, fill_value="someone-else")).write_parquet(table)
    with pytest.raises(ArtifactError, match="SHA-256 differs"):
        Recommender.load(model)


@pytest.mark.parametrize(
    ("latest", "message"),
    [(b"", "holds nothing"), (b"../elsewhere", "not the name of a version"), (b"/etc", "not the name of a version"),
     (b"v20000101T000000000000", "holds no manifest.json"), (b"\x00\xff", "unreadable")],
)  # fmt: skip
def test_a_bad_latest_is_refused_never_followed(model, latest, message) -> None:
    (model / LATEST).write_bytes(latest)
    with pytest.raises(ArtifactError, match=message):
        resolve_version(model)


@pytest.mark.parametrize(
    "manifest",
    [b"{not json", b"[]", b'{"version": "v1"}', json.dumps({"files": {"../x": "0"}}).encode()],
)
def test_a_bad_manifest_is_refused(model, manifest) -> None:
    (model / version_of(model) / MANIFEST).write_bytes(manifest)
    with pytest.raises(ArtifactError):
        Recommender.load(model)


def test_the_cli_refuses_a_corrupt_version_without_a_traceback(model, tmp_path, capsys) -> None:
    index = next((model / version_of(model)).rglob("*.index"))
    _flip(index)
    (tmp_path / "users.txt").write_text("u0\n")
    code = main(["recommend", str(model), "--users", str(tmp_path / "users.txt"), "--out", str(tmp_path / "r.parquet")])
    err = capsys.readouterr().err
    assert code == 2
    assert "SHA-256 differs" in err and index.name in err and "what to do:" in err
    assert "Traceback" not in err
