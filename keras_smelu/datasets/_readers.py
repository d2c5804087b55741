"""Reading large text files in bounded memory: binary blocks cut at line ends, parsed by pyarrow.

A file is read in blocks of about `chunk_bytes` bytes, each cut after its last newline, so memory
is bounded by the block size, not the file size. Every block knows the line number of its first
line, so an error found in it names `file:line`. A block is parsed by pyarrow's columnar CSV
reader (vectorised C++); when pyarrow refuses a block, the block alone is re-read line by line
in Python to find and name the offending line (the error path only).
"""

from __future__ import annotations

import functools
import gzip
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from keras_smelu.datasets._parallel import in_worker

INSTALL_HINT = 'pip install "keras-smelu[data]"'
DEFAULT_CHUNK_BYTES = 4 << 20


@functools.cache  # called for every column of every chunk: imports looked up once
def pyarrow_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """`(pyarrow, pyarrow.csv, pyarrow.compute)`, or an ImportError saying how to install them."""
    try:
        return (
            importlib.import_module("pyarrow"),
            importlib.import_module("pyarrow.csv"),
            importlib.import_module("pyarrow.compute"),
        )
    except ImportError as exc:
        raise ImportError(
            "Streaming loaders need the optional dependency 'pyarrow', which could not be "
            f"imported ({exc}). Install the data extras with: {INSTALL_HINT}"
        ) from exc


def default_chunk_bytes(columns: int) -> int:
    """256 KiB of text per column, within 4-16 MiB. Most of a chunk's fixed cost is per column,
    so wide rows take larger chunks (Criteo's 40 columns: 10 MiB, 1.2x faster than 4 MiB; 16 MiB
    gains nothing more), and narrow rows small ones (MovieLens's 4: 4 MiB; 8 MiB costs 1.5x the
    memory)."""
    return min(max(columns << 18, DEFAULT_CHUNK_BYTES), 16 << 20)


def check_chunk_bytes(chunk_bytes: int) -> int:
    """Validates a block size of at least 1 KiB."""
    if int(chunk_bytes) != chunk_bytes or chunk_bytes < 1024:
        raise ValueError(f"`chunk_bytes` must be an integer >= 1024. Received: {chunk_bytes!r}")
    return int(chunk_bytes)


@dataclass(frozen=True)
class Block:
    """Whole lines of one file: `data` ends with a newline and starts `offset` bytes into the
    file (after decompression)."""

    path: Path
    data: bytes | bytearray
    offset: int

    @functools.cached_property
    def first_line(self) -> int:
        """1-based number of the block's first line in its file. Only errors name lines, so
        the newlines before the block are counted then, by reading the file up to it."""
        lines, left = 1, self.offset
        with open_binary(self.path) as f:
            while left:
                part = f.read(min(left, 1 << 24))
                if not part:
                    break
                lines += part.count(b"\n")
                left -= len(part)
        return lines

    def _line_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        buf = np.frombuffer(self.data, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1])
        return starts, ends

    def row_lines(self) -> np.ndarray:
        """1-based line numbers of the non-blank lines: the rows a parser returns, in order."""
        starts, ends = self._line_bounds()
        length = ends - starts
        buf = np.frombuffer(self.data, dtype=np.uint8)
        only_cr = (length == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13)
        return self.first_line + np.flatnonzero((length > 0) & ~only_cr)

    def n_rows(self) -> int:
        """Number of non-blank lines, without parsing them."""
        return len(self.row_lines())

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """`(line number, raw line without its newline)`; for error paths only (Python loop)."""
        for offset, raw in enumerate(self.data.split(b"\n")[:-1]):
            yield self.first_line + offset, raw.rstrip(b"\r")

    def without_first_line(self) -> tuple[bytes, Block]:
        """`(first line, the rest of the block)`: to take off a header."""
        cut = self.data.index(b"\n") + 1
        return self.data[:cut].rstrip(b"\r\n"), Block(
            self.path, self.data[cut:], self.offset + cut
        )


def open_binary(path: Path):
    """`path` opened for reading bytes, decompressed when it ends in `.gz`."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def iter_blocks(path: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[Block]:
    """Reads `path` (plain or `.gz`) in blocks of whole lines of about `chunk_bytes` bytes."""
    offset = 0
    carry = b""
    with open_binary(path) as f:
        while True:
            # One buffer per block, read into after the carried partial line and cut in place:
            # the block's bytes are held once, not copied (peak memory is a few blocks).
            data = bytearray(len(carry) + chunk_bytes)
            data[: len(carry)] = carry
            with memoryview(data) as view:
                read = f.readinto(view[len(carry) :])
            if not read:
                break
            del data[len(carry) + read :]
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: keep reading until it ends
                carry = bytes(data)
                continue
            carry = bytes(data[cut:])
            del data[cut:]
            block = Block(path, data, offset)
            offset += len(data)
            del data
            yield block
    if carry:
        yield Block(path, carry + b"\n", offset)


def decode_error(block: Block) -> ValueError | None:
    """A `file:line` error for the first line of `block` that is not UTF-8, else None."""
    for number, raw in block.lines():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return ValueError(
                f"{block.path}:{number}: expected UTF-8 text. Received the bytes "
                f"{raw[max(e.start - 10, 0) : e.end + 10]!r} (invalid at byte {e.start + 1} "
                "of the line)."
            )
    return None


def read_csv_block(
    block: Block,
    *,
    delimiter: str,
    names: Sequence[str],
    types: Mapping[str, str],
    what: str,
):
    """Parses a block of delimited text into a `pyarrow.Table` of the columns in `types`.

    `types` maps the columns to keep to `"int"`, `"float"`, `"str"` or `"id8"`; other columns
    are parsed for their count only. `"id8"` is a string column of 8-byte ids (hex hashes),
    parsed as 8-byte binary (cheaper to parse and to hash), or as `"str"` when a value in the
    block has another width. Empty integer and float fields are null; empty strings stay `""`
    (null in an `"id8"` block). No quoting: a delimiter always separates fields. A line with
    the wrong number of fields, a value that does not convert, or bytes that are not UTF-8 raise
    `ValueError` naming `file:line`, the column and what was expected (`what` names the layout).
    """
    pa, _, _ = pyarrow_modules()
    try:
        table = _read_csv(block, delimiter, names, types)
    except pa.ArrowInvalid as exc:
        if "id8" in types.values():  # an id of another width, or a bad line: as strings
            strings = {name: "str" if kind == "id8" else kind for name, kind in types.items()}
            return read_csv_block(block, delimiter=delimiter, names=names, types=strings, what=what)
        raise _locate_csv_error(block, delimiter, names, types, what, exc) from None
    ids = [name for name, kind in types.items() if kind == "id8"]
    # Binary columns skip the parser's UTF-8 check: text that is all ASCII needs none.
    if ids and not block.data.isascii():
        try:
            for name in ids:
                table.column(name).cast(pa.binary()).cast(pa.string())
        except pa.ArrowInvalid:
            raise decode_error(block) from None
    return table


def _read_csv(block: Block, delimiter: str, names: Sequence[str], types: Mapping[str, str]):
    pa, pcsv, _ = pyarrow_modules()
    arrow_types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "id8": pa.binary(8),
    }
    return pcsv.read_csv(
        pa.BufferReader(block.data),
        read_options=pcsv.ReadOptions(
            column_names=list(names),
            block_size=1 << 20,
            use_threads=not in_worker(),  # worker threads already share out the cores
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=delimiter, quote_char=False, ignore_empty_lines=True
        ),
        convert_options=pcsv.ConvertOptions(
            column_types={name: arrow_types[kind] for name, kind in types.items()},
            include_columns=list(types),
            null_values=[""],
            strings_can_be_null="id8" in types.values(),  # an empty 8-byte id is null
            check_utf8=True,
        ),
    )


def _locate_csv_error(block, delimiter, names, types, what, exc) -> ValueError:
    """The `file:line` error behind a block pyarrow refused (re-reads that block in Python)."""
    bad_text = decode_error(block)
    if bad_text is not None:
        return bad_text
    sep = delimiter.encode()
    index = {name: i for i, name in enumerate(names)}
    for number, raw in block.lines():
        if not raw:
            continue
        fields = raw.split(sep)
        if len(fields) != len(names):
            return ValueError(
                f"{block.path}:{number}: expected {len(names)} {delimiter!r}-separated fields "
                f"({what}). Received {len(fields)}: {raw[:80].decode()!r}"
            )
        for name, kind in types.items():
            value = fields[index[name]].decode()
            if kind == "str" or value == "":
                continue
            try:
                int(value) if kind == "int" else float(value)
            except ValueError:
                expected = "an integer" if kind == "int" else "a number"
                return ValueError(
                    f"{block.path}:{number}: column {name!r} must be {expected}. "
                    f"Received: {value!r}"
                )
            if kind == "int" and not -(2**63) <= int(value) < 2**63:
                return ValueError(
                    f"{block.path}:{number}: column {name!r} must be an integer in the int64 "
                    f"range. Received: {value!r}"
                )
    last = block.first_line + block.data.count(b"\n") - 1
    return ValueError(f"{block.path}:{block.first_line}-{last}: cannot parse ({what}): {exc}")


def column_numpy(table, name: str, block: Block, *, required: bool = False) -> np.ndarray:
    """A numeric column as NumPy; nulls (empty fields) are 0, or an error when `required`."""
    column = table.column(name)
    if column.null_count and required:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(
            f"{block.path}:{block.row_lines()[row]}: column {name!r} must not be empty."
        )
    if column.null_count:
        column = column.fill_null(0)
    return column.to_numpy()


def bad_row_error(block: Block, bad: np.ndarray, message: str, values: np.ndarray) -> ValueError:
    """A `file:line` error for the first row of `bad` (a boolean mask over the block's rows)."""
    row = int(np.flatnonzero(bad)[0])
    return ValueError(f"{block.path}:{block.row_lines()[row]}: {message}. Received: {values[row]}")


def iter_files(files: Sequence[Path], chunk_bytes: int) -> Iterator[tuple[int, Block]]:
    """`(file index, block)` for every block of every file, in order."""
    for i, file in enumerate(files):
        for block in iter_blocks(file, chunk_bytes):
            yield i, block
