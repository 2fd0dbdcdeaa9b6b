"""Every file the pipeline reads or writes, on local disk or in object storage, through one interface.

A user writes a path: a plain local path, `file://`, `s3://bucket/key`, `gs://`, `hdfs://`, or any
other scheme fsspec knows. `locate` turns it into a `Location`: a pyarrow filesystem and a path in
it (pyarrow's own filesystems where it has one, fsspec's wrapped in pyarrow's interface where it
has not), so that Ray Data, Parquet and our own readers and writers all use the same object, and
the same code runs on a laptop and on a cluster whose nodes share only a bucket.

Object stores are not disks: there are no folders (a prefix is a folder), no rename (a move is a
copy and a delete), and a single object appears whole or not at all. So this module offers only
what both kinds honour: whole-object writes (atomic on both: a local file is written beside its
target and renamed), prefix listings, and deletes. Anything that must appear atomically as a
group (a checkpoint, a run's shards) is made atomic by a marker written last, by its owner.

Where the store is: `AWS_ENDPOINT_URL` (set by the environment, or by a config's
`storage.s3_endpoint_url`, which `configure` exports to Ray's workers too) for on-premise S3 stores
such as MinIO, Ceph or SeaweedFS. Credentials come only from the providers' standard chains (the
environment, ~/.aws, instance roles); a config never holds them, so no output can leak them.

This module is a leaf: it imports nothing of ours but `errors`, so `filters/` and `generators/`
use it too without depending on the engine.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.errors import UserError

GLOB_CHARS = "*?["


class Location:
    """A file or folder: the filesystem it lives on, its path there, and the URI a user would write.
    A file found by a listing (`files`, `expand`) keeps the (size, mtime_ns) the listing gave as `stat`:
    an object store lists a thousand objects in one request, where asking each costs one."""

    __slots__ = ("fs", "path", "uri", "stat")

    def __init__(self, fs: pafs.FileSystem, path: str, uri: str, stat: tuple[int, int] | None = None):
        self.fs, self.path, self.uri = fs, path.rstrip("/") or "/", uri.rstrip("/") or uri
        self.stat = stat

    # --- naming -------------------------------------------------------------------------------

    def __truediv__(self, name: str) -> "Location":
        name = str(name).strip("/")
        return Location(self.fs, posixpath.join(self.path, name), f"{self.uri}/{name}")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> "Location":
        return Location(self.fs, posixpath.dirname(self.path), self.uri.rsplit("/", 1)[0] if "/" in self.uri else ".")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def local_path(self) -> Path:
        """The path on this machine's disk; only for a local location."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not on local disk")
        return Path(self.path)

    def within(self, root: "Location") -> bool:
        """Below `root` on the same filesystem."""
        return type(self.fs) is type(root.fs) and self.path.startswith(root.path.rstrip("/") + "/")

    def relative_to(self, root: "Location") -> str:
        prefix = root.path.rstrip("/") + "/"
        if not self.path.startswith(prefix):
            raise ValueError(f"{self.uri} is not under {root.uri}")
        return self.path[len(prefix):]

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Location) and (self.uri, self.path) == (other.uri, other.path)

    def __hash__(self) -> int:
        return hash((self.uri, self.path))

    # --- looking --------------------------------------------------------------------------------

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def size(self) -> int:
        return self.info().size

    def children(self) -> list["Location"]:
        """Files and folders directly inside, sorted by name; none if this is not a folder."""
        return self._listing(recursive=False, files_only=False)

    def files(self, hidden: bool = False) -> list["Location"]:
        """Every file below, sorted by path; names starting with '.' or '_' (markers, temporary
        folders, other tools' metadata) and everything under them are left out unless `hidden`."""
        found = self._listing(recursive=True, files_only=True)
        if hidden:
            return found
        return [f for f in found if not any(p.startswith((".", "_")) for p in f.relative_to(self).split("/"))]

    def _listing(self, recursive: bool, files_only: bool) -> list["Location"]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True))
        except NotADirectoryError:
            return []
        wanted = [i for i in infos if i.type == pafs.FileType.File or not files_only and i.type == pafs.FileType.Directory]
        return sorted(map(self._listed, wanted), key=lambda loc: loc.path)

    def _listed(self, info: pafs.FileInfo) -> "Location":
        """What a listing of this folder found: a file keeps its size and modification time."""
        found = self / info.path[len(self.path.rstrip("/")) + 1:]
        if info.type == pafs.FileType.File:
            found.stat = (info.size, info.mtime_ns)
        return found

    # --- reading and writing --------------------------------------------------------------------

    def open_read(self):
        """A seekable file (Parquet footers, WARC offsets) on local disk and in object storage."""
        return self.fs.open_input_file(self.path)

    def read_bytes(self) -> bytes:
        """The bytes stored, as stored: pyarrow's streams would gunzip a `.gz` name (and gzip it on an
        S3 write but not a local one), so every stream here names no compression."""
        with self.fs.open_input_stream(self.path, compression=None) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    @contextlib.contextmanager
    def open_write(self) -> Iterator:
        """A stream whose whole content appears at once when the block ends, and not at all if it fails."""
        if not self.is_local:
            with self.fs.open_output_stream(self.path, compression=None) as f:  # an object appears when its upload completes
                yield f
            return
        target = self.local_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                yield f
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, data: bytes) -> None:
        with self.open_write() as f:
            f.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def make_dir(self) -> None:
        """A folder on disk; in object storage nothing (a prefix exists once something is written under it)."""
        self.fs.create_dir(self.path, recursive=True)

    def remove(self) -> None:
        """The file, or the folder and everything in it; nothing if it is not there."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)

    def move_to(self, target: "Location") -> None:
        """A rename on disk; a copy and a delete in object storage (not atomic: the caller's marker is)."""
        if self.is_local:
            target.parent.make_dir()
        self.fs.move(self.path, target.path)

    def copy_to(self, target: "Location") -> None:
        """A file or a whole folder, across filesystems too (a local model uploaded to a bucket)."""
        if self.is_dir():
            target.make_dir()
            pafs.copy_files(self.path, target.path, source_filesystem=self.fs, destination_filesystem=target.fs)
        else:
            if target.is_local:
                target.parent.make_dir()
            with self.fs.open_input_stream(self.path, compression=None) as src, target.open_write() as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def locate(uri: str | os.PathLike | Location) -> Location:
    """The Location of a path or URI; a relative local path stays relative to the working directory."""
    if isinstance(uri, Location):
        return uri
    text = os.fspath(uri)
    if "://" not in text:
        path = os.path.abspath(os.path.expanduser(text))
        return Location(pafs.LocalFileSystem(), path, text.rstrip("/") or text)
    if text.startswith("s3://") and _s3_region():
        return Location(_s3(_s3_region(), os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID")),
                        text[len("s3://"):], text)
    try:
        fs, path = pafs.FileSystem.from_uri(text)  # for s3:// without a region: asks the bucket's region
    except (pa.ArrowInvalid, ValueError) as e:
        if "Unrecognized filesystem" not in str(e) and "scheme" not in str(e).lower():
            raise UserError(f"{text}: {e}") from None
        fs, path = _fsspec(text)
    except OSError as e:
        raise UserError(f"{text}: {first_line(e)}") from None
    return Location(fs, path, text)


def _s3_region() -> str | None:
    """The region S3 clients are told, if any: an on-premise store (an endpoint is set) has one region,
    whatever its name, so no request is made to find a bucket's region."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return region or ("us-east-1" if os.environ.get("AWS_ENDPOINT_URL") else None)


@functools.lru_cache(maxsize=8)
def _s3(region: str, endpoint: str | None, access_key_id: str | None) -> pafs.S3FileSystem:
    """One S3 client per store; credentials come from the providers' chain (`access_key_id` only keys the cache)."""
    if not endpoint:
        return pafs.S3FileSystem(region=region)
    scheme, _, host = endpoint.rpartition("://")
    return pafs.S3FileSystem(region=region, endpoint_override=host.rstrip("/"), scheme=scheme or "https")


def _fsspec(uri: str) -> tuple[pafs.FileSystem, str]:
    """A scheme pyarrow lacks (az://, abfs://, ...): fsspec's filesystem in pyarrow's interface."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as e:
        raise UserError(f"{uri}: no filesystem for this scheme ({first_line(e)})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def expand(patterns: list[str | os.PathLike], what: str) -> list[Location]:
    """Files named by paths, folders (every file inside) and glob patterns (`*`, `?`, `[...]` within a
    name, `**` across folders), on any filesystem, sorted so a run reads them in the same order; each
    with its `stat`, from one listing per folder or glob rather than a request per file."""
    files: list[Location] = []
    for pattern in patterns:
        found = matches(pattern, what)
        if not found:
            raise UserError(f"{what}: no file matches '{os.fspath(pattern)}'")
        files.extend(found)
    return files


def matches(pattern: str | os.PathLike, what: str) -> list[Location]:
    """The files one path, folder or glob names, as `expand` finds them, or none; a store that cannot
    be asked (unreachable, access denied) is a UserError that names `what`, the URI and the cause."""
    pattern = os.fspath(pattern)
    if any(c in pattern for c in GLOB_CHARS):
        looked = _glob(pattern, what)
    else:
        single = locate(pattern)
        looked = [(single, _info(single, what))]
    found: list[Location] = []
    for match, info in looked:
        if info.type == pafs.FileType.Directory:
            found.extend(match.files())
        elif info.type == pafs.FileType.File:
            match.stat = (info.size, info.mtime_ns)
            found.append(match)
    return found


def _glob(pattern: str, what: str) -> list[tuple[Location, pafs.FileInfo]]:
    """The glob's matches with what the one listing of its static prefix said of each."""
    parts = pattern.split("/")
    static = next(i for i, p in enumerate(parts) if any(c in p for c in GLOB_CHARS))
    root = locate("/".join(parts[:static]) or ".")
    wanted = parts[static:]
    recursive = len(wanted) > 1 or "**" in wanted
    if _info(root, what).type != pafs.FileType.Directory:
        return []
    infos = root.fs.get_file_info(pafs.FileSelector(root.path, recursive=recursive, allow_not_found=True))
    prefix = root.path.rstrip("/") + "/"
    listed = sorted((i for i in infos if i.type != pafs.FileType.NotFound), key=lambda i: i.path)
    return [(root._listed(i), i) for i in listed if _match(i.path[len(prefix):].split("/"), wanted)]


def _match(name: list[str], pattern: list[str]) -> bool:
    """Component by component; `**` matches any number of folders."""
    if not pattern:
        return not name
    if pattern[0] == "**":
        return any(_match(name[i:], pattern[1:]) for i in range(len(name) + 1))
    if not name or name[0].startswith(".") and not pattern[0].startswith("."):  # as a shell: `*` skips hidden names
        return False
    return fnmatch.fnmatchcase(name[0], pattern[0]) and _match(name[1:], pattern[1:])


def _info(location: Location, what: str) -> pafs.FileInfo:
    """Looking at a location; what the store answers when it cannot be looked at is a user's error."""
    try:
        return location.info()
    except OSError as e:
        raise UserError(f"{what}: {location.uri}: {first_line(e)}") from None


@contextlib.contextmanager
def local_copy(location: Location | str) -> Iterator[Path]:
    """A path on local disk with the file's or folder's content, for libraries that only open local
    files (fastText, transformers): the file itself when it is local, else a temporary download."""
    location = locate(location)
    if location.is_local:
        yield location.local_path()
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-") as tmp:
        copy = Location(pafs.LocalFileSystem(), str(Path(tmp) / (location.name or "copy")), "")
        location.copy_to(copy)
        yield copy.local_path()


def probe_writable(location: Location) -> str | None:
    """Why nothing can be written at `location`, or None: a small object is written and deleted."""
    probe = location / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.remove()
    except OSError as e:
        return first_line(e)
    return None


def first_line(e: BaseException) -> str:
    """An error from a filesystem in one line (S3 errors carry a paragraph of detail). Of an S3 error
    only what a user acts on is kept, "Access Denied" or "Could not connect to server (host:port)":
    the operation, the key and the request id are pyarrow's, and the caller names the URI."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    aws = _AWS_ERROR.search(line)
    if aws is None:
        return line
    code, detail = aws.groups()
    detail, _, more = detail.partition("; Details:")
    detail = _AWS_NOISE.sub("", detail).strip().rstrip(".")
    if detail in ("", "No response body"):
        detail = code.replace("_", " ").lower()
    host = _AWS_HOST.search(more)
    return f"{detail} ({host.group(1)})" if host else detail


_AWS_ERROR = re.compile(r"AWS Error ([\w ()]+?) during \w+ operation: ?(.*)")
_AWS_NOISE = re.compile(r"curlCode: \d+, |Unable to parse ExceptionName: \w+ Message: |\(Request ID: [^)]*\)")
_AWS_HOST = re.compile(r"(?:connect to|resolve host:) ([^\s;]+)")


def configure(s3_endpoint_url: str | None) -> dict[str, str]:
    """Apply a config's storage settings to this process; returns the environment Ray's workers need too."""
    env = {}
    if s3_endpoint_url:
        env["AWS_ENDPOINT_URL"] = s3_endpoint_url
    os.environ.update(env)
    return env


def open_text(location: Location | str, errors: str = "strict", newline: str | None = None):
    """A file's text as a stream of lines, gunzipped when its name ends in `.gz`, on any filesystem.

    The compression is named, never left to pyarrow's detection, so what a file holds does not depend
    on which of pyarrow's calls opened it."""
    location = locate(location)
    compression = "gzip" if location.name.endswith(".gz") else None
    stream = location.fs.open_input_stream(location.path, compression=compression)
    return io.TextIOWrapper(stream, encoding="utf-8", errors=errors, newline=newline)


# An option's `json_schema_extra` for a file or folder that a stage's workers open (a model, a block
# list), or a folder they write to (an index), not the driver alone: on a cluster each node must see
# it, which is asked before any pass.
READ_ON_EVERY_NODE = {"on_every_node": "read"}
WRITTEN_ON_EVERY_NODE = {"on_every_node": "written"}


def file_problem(uri: str, folder: bool = False) -> str | None:
    """Why `uri` is not a file (or, with `folder`, a folder) that can be read, in one line that names it
    ("not found: URI", or what the store answered), or None: the checks before work ask this of every
    model, list and rules file."""
    try:
        location = locate(uri)
        kind = location.info().type
        if kind == pafs.FileType.File or folder and kind == pafs.FileType.Directory:
            return None
    except UserError as e:
        return str(e)
    except OSError as e:
        return f"{uri}: {first_line(e)}"
    bucket = missing_bucket(location)
    return f"not found: {uri}" + (f" ({bucket})" if bucket else "")


def missing_bucket(location: Location | str) -> str | None:
    """"there is no bucket 'B'" when an object-store location's bucket does not exist, else None: to the
    store a key in a missing bucket is merely not found, yet the bucket is the likelier mistake."""
    try:
        location = locate(location)
        bucket = location.path.split("/", 1)[0]
        if location.fs.type_name in ("s3", "gcs") and location.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            return f"there is no bucket '{bucket}'"
    except (UserError, OSError):  # a location or store that cannot be asked names its own cause elsewhere
        pass
    return None
