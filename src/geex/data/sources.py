"""Files of a corpus source: a directory tree, a zip or tar archive, or JSON Lines of documents.

Every source yields ``Document(origin, path, data, language)`` in a fixed order (sorted paths,
archive order, line order), so a build is deterministic. JSONL lines carry the text in ``code``
(CodeGeeX's key), ``content`` or ``text``, and optionally ``path`` and ``language``.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geex.errors import UserError

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox"}
MAX_READ = 16 * 1024 * 1024  # bigger members are skipped unread (far above any filter's limit)


@dataclass(frozen=True)
class Document:
    origin: str  # the source argument it came from
    path: str  # path inside the source
    data: bytes
    language: str | None = None  # given by the source (JSONL), else detected


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in exclude)


def _tree(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not _excluded(d, exclude))
        for name in sorted(filenames):
            if _excluded(name, exclude):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_READ:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            yield Document(str(root), str(path.relative_to(root)), data)


def _member_excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(_excluded(part, exclude) for part in name.split("/"))


def _zip(path: Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.is_dir() and info.file_size <= MAX_READ and not _member_excluded(info.filename, exclude):
                yield Document(str(path), info.filename, z.read(info))


def _tar(path: Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    with tarfile.open(path) as t:
        for member in t:
            if member.isfile() and member.size <= MAX_READ and not _member_excluded(member.name, exclude):
                f = t.extractfile(member)
                if f is not None:
                    yield Document(str(path), member.name, f.read())


def _jsonl(path: Path) -> Iterator[Document]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                text = next(obj[k] for k in ("code", "content", "text") if isinstance(obj.get(k), str))
            except (ValueError, StopIteration, AttributeError):
                raise UserError(f"{path}:{i}: expected a JSON object with a 'code', 'content' or 'text' string") from None
            yield Document(str(path), str(obj.get("path") or f"{path.name}:{i}"), text.encode("utf-8", "replace"),
                           obj.get("language"))


def read_source(source: str | Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    """``exclude``: glob patterns for file or directory names (any path component) to skip."""
    path = Path(source)
    if path.is_dir():
        return _tree(path, exclude)
    if not path.is_file():
        raise UserError(f"corpus source {source} does not exist")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
        return _jsonl(path)
    if zipfile.is_zipfile(path):
        return _zip(path, exclude)
    if tarfile.is_tarfile(path):
        return _tar(path, exclude)
    raise UserError(f"corpus source {source}: not a directory, zip, tar or JSONL file")
