"""Model versions on disk: the ``LATEST`` pointer, the manifest, and the files' SHA-256.

A model directory holds version folders (``v<UTC time>``) and a ``LATEST`` file naming the
current one. Each version's ``manifest.json`` lists the SHA-256 of every file saved in the
folder; loading verifies them all before reading any, so a truncated, flipped, missing or
replaced artifact is refused with one message naming the file, instead of a traceback from
deep inside a reader or -- worse -- a model that loads and serves different slates.
Files added after the save (an ``evaluation.json``) are not part of the version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from vidrec.errors import VidrecError

LATEST = "LATEST"
MANIFEST = "manifest.json"
VERSION_NAME = re.compile(r"v\d{8}T\d{12}")
"""How :meth:`~vidrec.recommender.Recommender.save` names versions; ``LATEST`` must name one."""
_CHUNK = 1 << 20


class ArtifactError(VidrecError):
    """A model directory or version folder that cannot be served as it is on disk."""


def _retrain_hint(root: Path) -> str:
    others = sorted(p.name for p in root.glob("v*") if (p / MANIFEST).is_file()) if root.is_dir() else []
    restore = f"point {root / LATEST} at another version ({', '.join(others[-3:])}), " if others else ""
    return f"{restore}restore the folder from a backup, or retrain with `vidrec train DATA_DIR --out {root}`"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(version: Path) -> dict[str, str]:
    """SHA-256 of every file under ``version`` but the manifest, by POSIX path relative to it."""
    files = sorted(p for p in version.rglob("*") if p.is_file() and p.relative_to(version).as_posix() != MANIFEST)
    return {p.relative_to(version).as_posix(): sha256(p) for p in files}


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write through a temporary file and rename: readers see the old content or the new, never half
    (``mode``: the file's permissions, set before it appears)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        if mode is not None:
            tmp.chmod(mode)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(version: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` with ``fields`` and the digest of every file now in ``version``."""
    manifest = {**fields, "files": file_digests(version)}
    write_atomic(version / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def point_latest(root: Path, version: str) -> None:
    """Make ``version`` the model directory's current one (atomically)."""
    write_atomic(root / LATEST, version + "\n")


def resolve_version(model_dir: str | Path) -> Path:
    """The version folder to load: ``model_dir`` itself, or the version its ``LATEST`` names.

    ``LATEST`` must hold one version name (``v<UTC time>``) of a folder beside it: an empty
    file, a path (``../elsewhere``) or a missing folder is refused, never followed.
    """
    root = Path(model_dir)
    if (root / MANIFEST).is_file():
        return root
    latest = root / LATEST
    if not latest.is_file():
        raise ArtifactError(f"{root}: no trained model here (no {LATEST} file or {MANIFEST})",
                            "train one with `vidrec train DATA_DIR --out MODEL_DIR`")  # fmt: skip
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{latest}: unreadable ({err})", _retrain_hint(root)) from None
    if not VERSION_NAME.fullmatch(name):
        shown = repr(name[:80]) if name else "nothing"
        raise ArtifactError(f"{latest}: holds {shown}, not the name of a version folder (v<UTC time>)",
                            _retrain_hint(root))  # fmt: skip
    version = root / name
    if not (version / MANIFEST).is_file():
        raise ArtifactError(f"{latest}: names {name}, but {version} holds no {MANIFEST}", _retrain_hint(root))
    return version


def read_manifest(version: Path) -> dict[str, Any]:
    """The version's manifest, after checking every file it lists against its SHA-256."""
    path = version / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable manifest ({err})", _retrain_hint(version.parent)) from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{path}: lists no artifact files and their SHA-256, so {version.name} cannot be verified",
                            _retrain_hint(version.parent))  # fmt: skip
    for name, expected in files.items():
        file = version / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ArtifactError(f"{path}: lists {name!r}, outside the version folder", _retrain_hint(version.parent))
        if not file.is_file():
            raise ArtifactError(f"{file}: missing (the manifest lists it)", _retrain_hint(version.parent))
        if sha256(file) != expected:
            raise ArtifactError(f"{file}: SHA-256 differs from the manifest (changed or corrupted since it was saved)",
                                _retrain_hint(version.parent))  # fmt: skip
    return manifest
