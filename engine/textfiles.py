"""Text files in, files out: one place that decides how input files are decoded and where
output files may be written.

Input files are UTF-8, with or without a byte-order mark (Excel writes one), or UTF-16 with a
byte-order mark (Excel's "Unicode text", many Windows exports). Anything else (UTF-16 without a
mark, Big5, Latin-1 with non-ASCII letters...) is refused with a :class:`TextFileError` naming
the file, the line and the expected encoding, instead of a decoding traceback or, worse, text
read wrongly.

Every loader of user files reads through :func:`open_text` or :func:`read_text`: the graph CSV
loader, the catalog loader and the training loaders. Every command that writes a file checks its
path first with :func:`check_output_file` or :func:`check_output_folder`.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

__all__ = [
    "EXPECTED_ENCODING",
    "OutputPathError",
    "TextFileError",
    "check_output_file",
    "check_output_folder",
    "decode_text",
    "open_text",
    "read_text",
    "text_lines",
]

#: what the error messages ask for
EXPECTED_ENCODING = "UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark"

# Longest marks first: the UTF-32 LE mark starts with the UTF-16 LE one.
_MARKS: tuple[tuple[bytes, str | None], ...] = (
    (codecs.BOM_UTF32_LE, None),
    (codecs.BOM_UTF32_BE, None),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_BYTES = 4096


class TextFileError(ValueError):
    """An input file is not in a supported encoding.

    Parameters
    ----------
    path : the file.
    line : 1-based line of the first undecodable byte, or None for the whole file.
    problem : what is wrong, e.g. ``"is not valid UTF-8 (byte 0xbc)"``.
    """

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = str(path) if line is None else f"{path} line {line}"
        super().__init__(f"{where}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without its location: what is wrong and what was expected."""
        return f"{self.problem}; expected {EXPECTED_ENCODING} (save the file as UTF-8)"


class OutputPathError(ValueError):
    """An output path cannot be written: its folder is missing, or it names a folder."""


def _encoding(path: Path, head: bytes) -> str:
    for mark, encoding in _MARKS:
        if head.startswith(mark):
            if encoding is None:
                raise TextFileError(path, None, "is UTF-32")
            return encoding
    if b"\x00" in head:
        # UTF-16 text without a mark decodes as "valid" UTF-8 full of NUL characters.
        raise TextFileError(path, None, "holds NUL bytes (UTF-16 without a byte-order mark, or not a text file)")
    return "utf-8"


def _first_bad_line(path: Path, encoding: str) -> tuple[int, str]:
    """(line, problem) of the first byte that does not decode; read again only on failure."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        bad = data[exc.start : exc.end].hex(" ")
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        return line, f"is not valid {name} (bytes {bad}: {exc.reason})"
    return 1, "could not be decoded"


class _CheckedText:
    """A text stream over a file (``newline=""``, as :mod:`csv` wants) whose decoding errors
    become :class:`TextFileError`."""

    def __init__(self, path: Path, binary: io.BufferedReader, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        self._text = io.TextIOWrapper(binary, encoding=encoding, errors="strict", newline="")

    def _failed(self) -> TextFileError:
        line, problem = _first_bad_line(self.path, self.encoding)
        return TextFileError(self.path, line, problem)

    def __iter__(self) -> _CheckedText:
        return self

    def __next__(self) -> str:
        try:
            return next(self._text)
        except UnicodeDecodeError:
            raise self._failed() from None

    def read(self, size: int = -1) -> str:
        try:
            return self._text.read(size)
        except UnicodeDecodeError:
            raise self._failed() from None

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> _CheckedText:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_text(path: str | Path) -> _CheckedText:
    """Open a text file for reading, its encoding told by its byte-order mark (UTF-8 without one).

    Lines keep their line endings (``newline=""``), so CSV readers see CRLF and quoted line
    breaks as written. Raises ``FileNotFoundError`` for a missing file and
    :class:`TextFileError` for an unsupported encoding (when opened, or when the bad line is read).

    >>> import tempfile, csv
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "t.csv"
    ...     _ = path.write_bytes("code\\r\\nÉ1\\r\\n".encode("utf-16"))
    ...     with open_text(path) as fh:
    ...         rows = list(csv.reader(fh))
    >>> rows
    [['code'], ['É1']]
    """
    path = Path(path)
    binary = path.open("rb")
    try:
        encoding = _encoding(path, binary.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
    except BaseException:
        binary.close()
        raise
    return _CheckedText(path, binary, encoding)


def decode_text(data: bytes, name: str | Path) -> str:
    """Decode the bytes of a file called ``name`` (a member of a zip, an upload) as
    :func:`open_text` decodes a file on disk; raises :class:`TextFileError` naming it.

    >>> decode_text("code\\n".encode("utf-16"), "t.csv")
    'code\\n'
    """
    path = Path(name)
    encoding = _encoding(path, data[:_SNIFF_BYTES])
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        bad = data[exc.start : exc.end].hex(" ")
        kind = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise TextFileError(path, line, f"is not valid {kind} (bytes {bad}: {exc.reason})") from None


_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def text_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` as a file opened with ``newline=""`` gives them to :mod:`csv` (split
    after ``\\r\\n``, ``\\r`` or ``\\n``, the ends kept), sliced from it one at a time: an
    ``io.StringIO`` of it holds four bytes a character (a district's 103 MB enrollments cost 394
    MB more that way).

    >>> list(text_lines('a,b\\r\\nc,"d\\re"\\nf'))
    ['a,b\\r\\n', 'c,"d\\r', 'e"\\n', 'f']
    """
    if text.count("\r") == text.count("\r\n"):  # no lone CR (nearly every file): split on LF alone
        start, find, size = 0, text.find, len(text)
        while start < size:
            end = find("\n", start) + 1 or size
            yield text[start:end]
            start = end
    else:
        for line in _LINE.finditer(text):
            yield line.group()


def read_text(path: str | Path) -> str:
    """The whole text of a file, decoded as :func:`open_text` does, line endings as written."""
    with open_text(path) as fh:
        return fh.read()


def check_output_file(path: str | Path, expected: str = "a file") -> Path:
    """Refuse, before any work is done, an output file that cannot be written.

    Raises :class:`OutputPathError` naming the path when it is a folder, when its folder does not
    exist (or is a file), or when that folder is not writable. ``expected`` says what the path
    should be in the message (``"a CASE package .json file"``).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path}: is a folder; expected {expected} (give a file name in it)")
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"{path}: folder {parent} does not exist; expected {expected} in an existing folder")
    if not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is not a folder; expected {expected} in an existing folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputPathError(f"{path}: not writable (permission denied); expected {expected}")
    return path


def check_output_folder(path: str | Path, expected: str = "a folder") -> Path:
    """Refuse an output folder that cannot be made: a file of that name, or a file on its way.

    A missing folder is fine (it is created with its parents when written).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: is a file; expected {expected} (it is created if missing)")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputPathError(f"{path}: {ancestor} is a file, not a folder; expected {expected}")
    if ancestor.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot write in {ancestor} (permission denied); expected {expected}")
    return path
