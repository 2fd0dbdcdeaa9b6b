"""Readers: every input format becomes a Ray dataset of schema rows (see `normalize`).

File formats are Ray Data datasources that stream each file, so a file is never loaded whole
and a corrupt file loses only what comes after the corruption: the records before it are kept
and the damage becomes one quarantined row that says where. Parquet and Hugging Face datasets
go through Ray's own readers and the same normalisation. Every file is found and opened through
`pipeline.storage`, so the same config reads local disk or a bucket.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import os
import zlib
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.json as pajson
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, FileBasedDatasource, ReadTask

from pipeline import storage
from pipeline.config import FORMAT_SUFFIXES, InputConfig, uncompressed_name
from pipeline.errors import UserError
from pipeline.normalize import Normalizer, detect_kind
from pipeline.records import stable_id
from pipeline.storage import Location

BATCH_ROWS = 2_000
# An uncompressed JSONL file bigger than this is read in ranges of about this many bytes, a task each;
# smaller files share tasks of up to this many bytes (`task_bytes`).
RANGE_BYTES = 32 << 20
TASKS_PER_CPU = 2
GZIP_MAGIC = b"\x1f\x8b"
COMPRESSIONS = {GZIP_MAGIC: "gzip", b"\x28\xb5\x2f\xfd": "zstd"}  # by their magic bytes
UTF8_BOM = b"\xef\xbb\xbf"


def input_files(config: InputConfig, output: Location | None = None,
                note: Callable[[str], None] | None = None) -> list[Location]:
    """The files the input's paths name, less two kinds, so a folder reads as its data:
    - those in the run's own output folder: an output written inside the input's folder would otherwise
      be read back by every rerun, its shards, rejects and logs taken for input;
    - in a folder given as a path, files whose names are not of the input's format where others' are:
      the README.md, LICENSE and scripts beside a dataset's shards, as `datasets` reads a folder (a
      folder with no such names, Hadoop's `part-00000`, is read whole). `note` hears what was left out.
    Files named one by one, or by a glob, are read whatever their names."""
    files = []
    for path in config.paths:
        found = storage.expand([path], "input.paths")
        if output is not None:
            found = [f for f in found if not f.within(output)]
        if _is_folder(path, found):
            fitting = [f for f in found if uncompressed_name(f.name).endswith(FORMAT_SUFFIXES[config.format])]
            if fitting and len(fitting) < len(found) and note:
                kept = set(fitting)
                others = [f.relative_to(storage.locate(path)) for f in found if f not in kept]
                note(f"{path}: read its {len(fitting)} {config.format} file{'s' * (len(fitting) > 1)}, left out "
                     f"{len(others)} other "
                     f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})")
            found = fitting or found
        files.extend(found)
    if not files:
        raise UserError(f"input.paths: every file of {', '.join(config.paths)} is in the output folder {output}")
    return files


def _is_folder(path: str, files: list[Location]) -> bool:
    """`path` named a folder: it gave other files than itself, and is not a glob."""
    return files != [storage.locate(path)] and not any(c in path for c in storage.GLOB_CHARS)


def fingerprint_inputs(config: InputConfig, output: Location | None = None) -> list:
    """What identifies an input for resume: file names, sizes and modification times as the store
    gives them (an object store's last-modified time), or the HF dataset."""
    if config.format == "hf":
        return [config.dataset, config.subset, config.split, config.data_files, config.revision]
    return [[file.uri, *file.stat] for file in input_files(config, output)]


def source_name(config: InputConfig) -> str:
    if config.name:
        return config.name
    if config.format == "hf":
        return str(config.dataset)
    return config.paths[0].rstrip("/").rsplit("/", 1)[-1].split("*")[0] or config.format


def read_input(config: InputConfig, output: Location | None = None,
               note: Callable[[str], None] | None = None) -> tuple["ray.data.Dataset", str]:
    """The input as schema rows, and their kind; `output` and `note` as for `input_files`."""
    source = source_name(config)
    if config.format == "hf":
        ds = _read_hf(config)
        kind = _kind_from_sample(config, ds.take(1))
        return ds.map_batches(_normalize_batch, fn_args=(Normalizer(kind, source, config.fields),),
                              batch_format="pyarrow"), kind
    files = input_files(config, output, note)
    if config.format == "parquet":
        ds = _union([ray.data.read_parquet([f.path for f in group], filesystem=group[0].fs) for group in _by_store(files)])
        kind = _kind_from_sample(config, ds.limit(1).take(1))
        ds = ds.map_batches(_normalize_batch, fn_args=(Normalizer(kind, source, config.fields),), batch_format="pyarrow")
    else:
        if config.format == "jsonl":
            kind = config.kind if config.kind != "auto" else _kind_from_sample(config, _first_json_record(files))
            ds = ray.data.read_datasource(JsonlRanges(files, Normalizer(kind, source, config.fields),
                                                      task_bytes=task_bytes(sum(map(_size, files)))))
        else:
            kind = "html"
            parse = _warc_parser(config.record_types, config.mime_types) if config.format == "warc" else _parse_html_file
            ds = _read_files(files, parse, Normalizer(kind, source, config.fields))
    return (ds.limit(config.limit) if config.limit else ds), kind


def read_inputs(configs: list[InputConfig], output: Location | None = None,
                note: Callable[[str], None] | None = None) -> "ray.data.Dataset":
    """The inputs as one dataset. Records (instructions, preference pairs) do not mix with other kinds:
    the union of their schemas leaves each row the other kind's columns empty, and the stages judged
    an instruction by an empty `text` (a length filter dropped 156 of 175 seed tasks as too short)."""
    read = [read_input(c, output, note) for c in configs]
    kinds = {kind for _, kind in read}
    if len(kinds) > 1 and kinds & {"instruction", "preference"}:
        said = "; ".join(f"{', '.join(c.paths) or c.dataset}: {kind}" for c, (_, kind) in zip(configs, read))
        raise UserError(f"input: the inputs hold different kinds of rows ({said}); a run takes one kind of record: run "
                        "them apart, or give `kind:` where the detection is wrong")
    datasets = [ds for ds, _ in read]
    return datasets[0] if len(datasets) == 1 else datasets[0].union(*datasets[1:])


def _by_store(files: list[Location]) -> list[list[Location]]:
    """The files in groups that one Ray reader can read: one filesystem, and one way from its paths to
    the URIs the user wrote (`_naming`), in the order given."""
    groups: list[list[Location]] = []
    for f in files:
        group = next((g for g in groups if _naming(g[0]) == _naming(f) and g[0].fs.equals(f.fs)), None)
        if group is None:
            groups.append([f])
        else:
            group.append(f)
    return groups


def _naming(f: Location) -> tuple[str, str]:
    """(path prefix, URI prefix) with `f.uri == uri_prefix + f.path[len(path_prefix):]`: two short strings
    that name a group's files as the user wrote them, where a table of every file's name would travel
    with each of Ray's read tasks."""
    common = len(os.path.commonprefix([f.path[::-1], f.uri[::-1]]))
    return f.path[: len(f.path) - common], f.uri[: len(f.uri) - common]


def _union(datasets: list["ray.data.Dataset"]) -> "ray.data.Dataset":
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]


def _kind_from_sample(config: InputConfig, sample: list[dict]) -> str:
    if config.kind != "auto":
        return config.kind
    return detect_kind(sample[0], config.fields) if sample else "document"


def _normalize_batch(batch: pa.Table, normalizer: Normalizer) -> pa.Table:
    return normalizer.table(normalizer.row(r) for r in batch.to_pylist())


def _read_hf(config: InputConfig) -> "ray.data.Dataset":
    """A Hub dataset, a local folder (`save_to_disk`'s or one of data files) or `data_files`; a folder or
    file in object storage is copied down first, since `datasets` reads local files."""
    import datasets

    with contextlib.ExitStack() as copies:
        local = lambda loc: str(copies.enter_context(storage.local_copy(loc)))  # noqa: E731
        dataset = local(config.dataset) if "://" in config.dataset else config.dataset
        data_files = [local(f) for f in storage.expand(config.data_files, "input.data_files")] if config.data_files else None
        try:
            if _saved_to_disk(dataset):
                hf = datasets.load_from_disk(dataset)
                hf = hf[config.split] if isinstance(hf, datasets.DatasetDict) else hf
            else:
                hf = datasets.load_dataset(dataset, config.subset, split=config.split, data_files=data_files,
                                           revision=config.revision)
        except Exception as e:  # datasets raises many types for "not found / offline / bad files"
            raise UserError(f"input: could not load Hugging Face dataset '{config.dataset}': {str(e).splitlines()[0]}") from None
        if config.limit:
            hf = hf.select(range(min(config.limit, len(hf)))).flatten_indices()
        # The Arrow table itself, put in Ray's object store before the copies go: `ray.data.from_huggingface`
        # first asks the Hub whether the dataset is hosted there, which offline costs a long time-out.
        return ray.data.from_arrow(hf.data.table)


def _saved_to_disk(dataset: str) -> bool:
    """A folder `Dataset.save_to_disk` wrote, which only `load_from_disk` opens."""
    folder = storage.locate(dataset)
    return folder.is_dir() and ((folder / "state.json").exists() or (folder / "dataset_dict.json").exists())


# --- streaming file datasource -------------------------------------------------------------


def task_bytes(total: int) -> int:
    """How many bytes of an input of `total` bytes one read task takes: RANGE_BYTES, or fewer where that
    would leave the cluster fewer than TASKS_PER_CPU tasks a CPU.

    A JSONL file was a task of its own, and Ray's file reader gives pages a task about every megabyte
    (128 tasks for 4,840 pages), where a task costs the driver tens of milliseconds and holds a CPU slot
    the pass's own tasks wait for: on two cores, 1,000 small JSONL files took twice the time of their rows
    in one file, and the web chain on 4,950 pages 1.34x its time with a few tasks (docs/engine.md)."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(RANGE_BYTES, total // (TASKS_PER_CPU * cpus)))


def _read_files(files: list[Location], parse: Callable, normalizer: Normalizer) -> "ray.data.Dataset":
    return _union([ray.data.read_datasource(RecordFiles(group, parse, normalizer), override_num_blocks=_tasks_for(group))
                   for group in _by_store(files)])


def _tasks_for(files: list[Location]) -> int:
    """How many read tasks Ray's file datasource shares whole files out to: `task_bytes` of them each."""
    total = sum(map(_size, files))
    return max(1, min(len(files), -(-total // task_bytes(total))))


class RecordFiles(FileBasedDatasource):
    """Streams each file through `parse(stream, uri, normalizer)`, which yields schema rows or whole tables.
    The files share one filesystem and one naming (`_by_store`); rows name a file by its URI."""

    def __init__(self, files: list[Location], parse: Callable, normalizer: Normalizer):
        super().__init__([f.path for f in files], filesystem=files[0].fs)
        self._naming = _naming(files[0])
        self._parse = parse
        self._normalizer = normalizer

    def resolve_compression(self, path: str, open_args: dict) -> None:
        """Raw bytes always: the parsers detect gzip themselves, so a truncated member is theirs to report."""
        return None

    def _read_stream(self, f, path: str) -> Iterator[pa.Table]:
        path_prefix, uri_prefix = self._naming
        yield from _tables(self._parse(f, uri_prefix + path[len(path_prefix):], self._normalizer), self._normalizer)


def _tables(items: Iterator[dict | pa.Table], normalizer: Normalizer) -> Iterator[pa.Table]:
    """A parser's rows and tables as tables of at most `BATCH_ROWS` rows each, in order."""
    rows: list[dict] = []
    for item in items:
        if isinstance(item, pa.Table):
            if rows:
                yield normalizer.table(rows)
                rows = []
            yield item
            continue
        rows.append(item)
        if len(rows) >= BATCH_ROWS:
            yield normalizer.table(rows)
            rows = []
    if rows:
        yield normalizer.table(rows)


class JsonlRanges(Datasource):
    """JSONL files as read tasks of about `range_bytes` each, so that one big file is read by every CPU
    of the cluster, not by one (Ray's file datasources give a file one task), and small files read
    several to a task, up to `task_bytes`.

    A range holds the lines that start in it, so every line is read once, by one task, whole. A
    compressed file (by its content) is one task: it cannot be entered in the middle. Lines of a range
    that does not start the file are located by byte offset, not line number, since numbering them
    would mean reading every line before them.
    """

    def __init__(self, files: list[Location], normalizer: Normalizer, range_bytes: int = RANGE_BYTES,
                 task_bytes: int = RANGE_BYTES):
        self._normalizer = normalizer
        ranges = [(f, start, stop) for f in files for start, stop in _byte_ranges(f, range_bytes)]
        self._tasks = _packed(ranges, task_bytes)

    def estimate_inmemory_data_size(self) -> int:
        return sum(_size(f) for f in {f for task in self._tasks for f, _, _ in task})

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        return [
            ReadTask(functools.partial(_read_ranges, task, self._normalizer),
                     BlockMetadata(num_rows=None, size_bytes=sum(map(_range_size, task)), exec_stats=None,
                                   input_files=[f.path for f, _, _ in task]),
                     per_task_row_limit=per_task_row_limit)
            for task in self._tasks
        ]


Range = tuple[Location, int, int | None]  # a file's [start, stop) bytes; (0, None): the whole file


def _range_size(r: Range) -> int:
    f, start, stop = r
    return (stop if stop is not None else _size(f)) - start


def _packed(ranges: list[Range], task_bytes: int) -> list[list[Range]]:
    """The ranges in tasks, in order: a part of a file is a task of its own, consecutive whole files
    share one while they add up to `task_bytes` at most."""
    tasks: list[list[Range]] = []
    held = 0
    for r in ranges:
        size = _range_size(r)
        if r[2] is None and tasks and tasks[-1][-1][2] is None and held + size <= task_bytes:
            tasks[-1].append(r)
            held += size
        else:
            tasks.append([r])
            held = size
    return tasks


def _read_ranges(task: list[Range], normalizer: Normalizer) -> Iterator[pa.Table]:
    for f, start, stop in task:
        yield from _read_range(f, start, stop, normalizer)


def _size(f: Location) -> int:
    return f.stat[0] if f.stat else f.size()


def _byte_ranges(f: Location, range_bytes: int) -> list[tuple[int, int | None]]:
    """[start, stop) byte ranges of about equal size covering the file; (0, None) for the whole file."""
    size = _size(f)
    if size <= range_bytes:
        return [(0, None)]
    with f.open_read() as fh:
        head = fh.read_at(64, 0)
    if _compression(head) or _is_array(head):
        return [(0, None)]
    n = -(-size // range_bytes)
    bounds = [size * k // n for k in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _read_range(f: Location, start: int, stop: int | None, normalizer: Normalizer) -> Iterator[pa.Table]:
    if stop is None:  # a whole file, streamed through a buffer as Ray's readers do: each read of an object is a request
        with f.fs.open_input_stream(f.path, compression=None, buffer_size=RANGE_BYTES) as fh:
            yield from _tables(_parse_jsonl(fh, f.uri, normalizer), normalizer)
        return
    with f.open_read() as fh:
        first, lines = lines_starting_in(fh, start, stop)
    yield from _tables(_parse_jsonl(io.BytesIO(lines), f.uri, normalizer, at_byte=first), normalizer)


def lines_starting_in(fh, start: int, stop: int, block: int = 1 << 16) -> tuple[int, bytes]:
    """(offset of the first, bytes) of the lines of a seekable file that start in [start, stop): one
    read of the range (one request to an object store), then to the end of its last line."""
    data = fh.read_at(stop - start + (start > 0), start - (start > 0))
    first = start
    if start > 0:  # the line holding byte start - 1 is the previous range's, whole
        cut = data.find(b"\n")
        if cut < 0:
            return start, b""
        first, data = start + cut, data[cut + 1:]
    tail, at = [], stop
    while data and not (tail[-1] if tail else data).endswith(b"\n"):
        more = fh.read_at(block, at)
        if not more:
            break
        end = more.find(b"\n")
        tail.append(more if end < 0 else more[: end + 1])
        at += len(more)
    return first, data + b"".join(tail)


def _compression(head: bytes) -> str | None:
    return next((codec for magic, codec in COMPRESSIONS.items() if head.startswith(magic)), None)


def _decompressed(f) -> tuple:
    """(the stream, its compression or None). By content, not by name: `.gz` files that are not gzip and
    vice versa exist. zstd (the `.jsonl.zst` of The Pile, SlimPajama, RedPajama) goes through Arrow's
    codec, which pyarrow ships, so it needs no package of its own."""
    raw = f if hasattr(f, "peek") else io.BufferedReader(f)
    codec = _compression(raw.peek(4)[:4])
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw), codec
    if codec == "zstd":
        return io.BufferedReader(pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")), codec
    return raw, None


def _corrupt(codec: str | None) -> str:
    return f"corrupt_{codec or 'file'}"


def _parse_jsonl(f, path: str, norm: Normalizer, at_byte: int | None = None) -> Iterator[dict | pa.Table]:
    """Chunks of lines go through Arrow's C++ JSON reader; a chunk it refuses is parsed line by line,
    so one bad line costs the speed of its own chunk, not the whole file, and only itself is lost.

    `at_byte`: `f` holds the lines of a range (`JsonlRanges`) from this offset on, which locates a bad
    line instead of its number; None: `f` is a whole file, perhaps compressed."""
    stream, codec = _decompressed(f) if at_byte is None else (f, None)
    if at_byte is None and _is_array(stream.peek(64)):
        yield from _parse_array(stream, path, norm, codec)
        return
    first_line = 1
    seen = False
    chunks = _line_chunks(stream)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except (EOFError, OSError, zlib.error) as e:
            yield norm.quarantine(_corrupt(codec), {"path": path, "after_line": first_line - 1, "error": str(e)[:200]})
            return
        seen = True
        fast = norm.from_arrow(_arrow_json(chunk)) if norm.kind == "document" else None
        if fast is not None:
            yield fast
        else:
            yield from _parse_lines(chunk.split(b"\n"), first_line, path, norm, at_byte)
        first_line += chunk.count(b"\n")
        if at_byte is not None:
            at_byte += len(chunk)
    if not seen and at_byte is None:
        yield norm.quarantine("empty_file", {"path": path})


def _is_array(head: bytes) -> bool:
    """A JSON array file (Alpaca's `alpaca_data.json`), not JSON Lines: its first character is `[`."""
    return head.removeprefix(UTF8_BOM).lstrip().startswith(b"[")


def _parse_array(stream, path: str, norm: Normalizer, codec: str | None) -> Iterator[dict]:
    """The records of a JSON array file. It is one document, so it is parsed whole, by one task: damage
    anywhere loses the file (one quarantined row that says where), where JSON Lines lose a line. A
    file of lines that are arrays (`[1, 2]`) is JSON Lines after all, and read as such."""
    try:
        data = stream.read()
    except (EOFError, OSError, zlib.error) as e:
        yield norm.quarantine(_corrupt(codec), {"path": path, "error": str(e)[:200]})
        return
    try:
        text = data.removeprefix(UTF8_BOM).decode("utf-8").lstrip()
        records, end = json.JSONDecoder().raw_decode(text)
    except UnicodeDecodeError as e:
        yield norm.quarantine("invalid_utf8", {"path": path, "error": str(e)[:200]})
        return
    except ValueError as e:
        yield norm.quarantine("bad_json", {"path": path, "error": str(e)[:200]})
        return
    if text[end:].strip():
        yield from _parse_lines(data.split(b"\n"), 1, path, norm)
        return
    if not records:
        yield norm.quarantine("empty_file", {"path": path})
    for item, record in enumerate(records):
        yield norm.row(record, {"path": path, "item": item})


def _line_chunks(stream, size: int = 1 << 22) -> Iterator[bytes]:
    """Whole lines, about `size` bytes at a time. A read error is raised after the complete lines before it."""
    buf = bytearray()
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            block = read(1 << 16)
        except (EOFError, OSError, zlib.error):
            end = buf.rfind(b"\n")
            if end >= 0:
                yield bytes(buf[: end + 1])
            raise
        if not block:
            break
        buf += block
        if len(buf) >= size:
            end = buf.rfind(b"\n")
            if end >= 0:
                yield bytes(buf[: end + 1])
                del buf[: end + 1]
    if buf:
        yield bytes(buf if buf.endswith(b"\n") else buf + b"\n")


def _arrow_json(chunk: bytes) -> pa.Table | None:
    try:
        return pajson.read_json(io.BytesIO(chunk), read_options=pajson.ReadOptions(
            use_threads=False, block_size=max(len(chunk) + 1, 1 << 20)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _parse_lines(lines: list[bytes], first_line: int, path: str, norm: Normalizer, at_byte: int | None = None
                 ) -> Iterator[dict]:
    """Rows, or quarantines located by line number (or by byte offset, with `at_byte`: see JsonlRanges)."""
    for line_no, raw in enumerate(lines, first_line):
        if at_byte is not None:
            where, at_byte = {"path": path, "byte": at_byte}, at_byte + len(raw) + 1
        else:
            where = {"path": path, "line": line_no}
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield norm.quarantine("invalid_utf8", {**where, "error": str(e)[:200]})
            continue
        try:
            record = json.loads(text)
        except ValueError as e:
            yield norm.quarantine("bad_json", {**where, "error": str(e)[:200], "line_start": text[:200]})
            continue
        yield norm.row(record, where)


def _first_json_record(files: list[Location]) -> list[dict]:
    """The first parseable record of the input, to decide its kind before the distributed read."""
    for file in files:
        try:
            with file.open_read() as fh:
                stream, _ = _decompressed(fh)
                if _is_array(stream.peek(64)):
                    record = _first_array_item(stream.read(1 << 20).removeprefix(UTF8_BOM))
                    if isinstance(record, dict):
                        return [record]
                    continue
                for raw in stream:
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        return [record]
        except (OSError, EOFError, zlib.error):
            continue
    return []


def _first_array_item(head: bytes) -> object:
    """The first element of a JSON array from the array's first bytes, or None where it does not end in them."""
    text = head.decode("utf-8", errors="ignore")
    try:
        return json.JSONDecoder().raw_decode(text[text.index("[") + 1:].lstrip())[0]
    except ValueError:
        return None


def _warc_parser(record_types: list[str], mime_types: list[str]):
    def parse(f, path: str, norm: Normalizer) -> Iterator[dict]:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        n = 0
        raw = f if hasattr(f, "peek") else io.BufferedReader(f)
        arc = _is_arc(raw)
        try:
            for record in ArchiveIterator(raw, arc2warc=True):
                n += 1
                if record.rec_type not in record_types:
                    continue
                http = record.http_headers
                mime = (http.get_header("Content-Type") if http else None) or record.rec_headers.get_header("Content-Type") or ""
                if mime_types and mime.split(";")[0].strip().lower() not in mime_types:
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                meta = {
                    "path": path,
                    "warc_record_id": None if arc else record.rec_headers.get_header("WARC-Record-ID"),
                    "warc_date": record.rec_headers.get_header("WARC-Date"),
                    "http_status": http.get_statuscode() if http else None,
                    "content_type": mime,
                }
                try:
                    payload = record.content_stream().read()
                except Exception as e:  # a damaged payload (bad chunking, bad encoding) is one bad record
                    yield norm.quarantine("corrupt_warc_record", {**meta, "url": url, "error": str(e)[:200]})
                    continue
                if getattr(record.raw_stream, "limit", 0) > 0:  # the file ended inside this record
                    yield norm.quarantine("truncated_warc", {**meta, "url": url, "missing_bytes": record.raw_stream.limit})
                    return
                own_id = {"id": stable_id(url, meta["warc_date"], payload)} if arc else {}
                yield norm.row({"html": payload, "url": url, **meta, **own_id})
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError) as e:
            yield norm.quarantine("corrupt_warc", {"path": path, "after_record": n, "error": str(e)[:200]})

    return parse


def _is_arc(raw) -> bool:
    """An ARC file, not a WARC file: warcio gives each converted ARC record a new random WARC-Record-ID
    on every read, so such a row's id comes from its capture (URL, date, payload) instead."""
    head = raw.peek(512)[:512]
    if head[:2] == GZIP_MAGIC:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error:
            return False
    return head.startswith(b"filedesc://")


def _parse_html_file(f, path: str, norm: Normalizer) -> Iterator[dict]:
    stream, codec = _decompressed(f)
    try:
        payload = stream.read()
    except (EOFError, OSError, zlib.error) as e:
        yield norm.quarantine(_corrupt(codec), {"path": path, "error": str(e)[:200]})
        return
    url = path if "://" in path else storage.locate(path).local_path().resolve().as_uri()
    yield norm.row({"html": payload, "url": url, "path": path})


# --- a path given without its format -------------------------------------------------------

_TEXT_FORMATS = tuple((fmt, FORMAT_SUFFIXES[fmt]) for fmt in ("parquet", "jsonl"))
_PAGE_FORMATS = tuple((fmt, FORMAT_SUFFIXES[fmt]) for fmt in ("warc", "html"))


def format_of(path: str, files: list[Location]) -> str | None:
    """The input format of the files one path names (as `storage.expand` lists them), for a command that
    takes paths without a config (`contamination-report --data`); None where their names cannot tell.

    Names vote, with or without `.gz` or `.zst`: `.parquet` and `.jsonl`/`.json`, else `.warc`/`.arc` and
    `.html`/`.htm`; other names (a README or SOURCE.txt beside the data) do not. A folder the vote
    leaves undecided, or one with a saved dataset's `.arrow` files, is a Hugging Face dataset folder.
    Pages vote only where no Parquet or JSON file does, so every folder that Parquet and JSONL decided
    before pages were known is read as it was."""
    names = [uncompressed_name(f.name) for f in files]
    saved = any(n.endswith(".arrow") for n in names)
    for formats in (_TEXT_FORMATS, _PAGE_FORMATS):
        found = {fmt for n in names for fmt, suffixes in formats if n.endswith(suffixes)}
        if found:
            if len(found) == 1 and not saved:
                return found.pop()
            break
    return "hf" if _is_folder(path, files) else None
