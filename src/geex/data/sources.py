"""Files of a corpus source: a directory tree, a zip or tar archive, or JSON Lines of documents.

Every source yields ``Document(origin, path, data, language)`` in a fixed order (sorted paths,
archive order, line order), so a build is deterministic. JSONL lines carry the text in ``code``
(CodeGeeX's key), ``content`` or ``text``, and optionally ``path`` and ``language``; a line that
is not so is an error naming the file and line. A truncated or corrupt archive is an error naming
the member; a binary file inside a tree is not (the build drops it as ``not_utf8``), nor is an
unreadable one (skipped).
"""

from __future__ import annotations

import fnmatch
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geex import jsonl
from geex.errors import UserError

TEXT_FIELDS = ("code", "content", "text")  # where a JSONL line's document is, in this order
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


ZIP_SUFFIXES = (".zip", ".jar", ".whl")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError,
                   RuntimeError, NotImplementedError)  # RuntimeError: an encrypted zip member


def _broken(path: Path, kind: str, member: str | None, e: BaseException) -> UserError:
    where = f" at member {member}" if member else ""
    return UserError(f"corpus source {path}: truncated or corrupt {kind} archive{where} ({e or type(e).__name__})")


def _zip(path: Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    name = None
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if not info.is_dir() and info.file_size <= MAX_READ and not _member_excluded(name, exclude):
                    yield Document(str(path), name, z.read(info))  # checks the member's CRC
    except _ARCHIVE_ERRORS as e:
        raise _broken(path, "zip", name, e) from None


def _tar(path: Path, exclude: tuple[str, ...] = ()) -> Iterator[Document]:
    name = None
    try:
        with tarfile.open(path) as t:
            for member in t:
                name = member.name
                if member.isfile() and member.size <= MAX_READ and not _member_excluded(name, exclude):
                    f = t.extractfile(member)
                    data = f.read() if f is not None else None
                    if data is not None and len(data) != member.size:
                        raise EOFError(f"{len(data)} of its {member.size} bytes")
                    if data is not None:
                        yield Document(str(path), name, data)
            # tarfile takes a header cut short at the end for the end of the archive: an archive cut at a
            # member boundary would pass silently. A complete one ends with a whole (zero) header block.
            if t.fileobj.tell() - t.offset < tarfile.BLOCKSIZE:
                raise EOFError("it ends without tar's end-of-archive blocks")
            t.fileobj.read()  # the rest of a compressed stream: a cut-off one fails its end check here
    except _ARCHIVE_ERRORS as e:
        raise _broken(path, "tar", name, e) from None


def document_text(obj: dict, where: str) -> str:
    """The text of one corpus line (``code``, CodeGeeX's key, else ``content`` or ``text``: the first
    one present, which must be a string). ``where`` (``path:line``) names the line in errors."""
    key = next((k for k in TEXT_FIELDS if obj.get(k) is not None), None)
    if key is None:
        raise UserError(f"{where}: expected a JSON object with a 'code', 'content' or 'text' string")
    return jsonl.string_field(obj, key, where)


def _jsonl(path: Path) -> Iterator[Document]:
    for i, obj in jsonl.objects(path):
        where = f"{path}:{i}"
        text = document_text(obj, where)
        name = jsonl.string_field(obj, "path", where, required=False)
        language = jsonl.string_field(obj, "language", where, required=False)
        yield Document(str(path), name or f"{path.name}:{i}", text.encode("utf-8", "replace"), language)


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
    try:
        if zipfile.is_zipfile(path):
            return _zip(path, exclude)
        if tarfile.is_tarfile(path):
            return _tar(path, exclude)
    except OSError as e:
        raise UserError(f"cannot read corpus source {source}: {e.strerror or e}") from None
    for kind, suffixes in (("zip", ZIP_SUFFIXES), ("tar", TAR_SUFFIXES)):
        if name.endswith(suffixes):
            raise UserError(f"corpus source {source}: not a readable {kind} archive (truncated or corrupt: its "
                            f"{'central directory' if kind == 'zip' else 'first header'} cannot be read)")
    raise UserError(f"corpus source {source}: not a directory, zip, tar or JSONL file")
