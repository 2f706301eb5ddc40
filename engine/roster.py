"""Classes and rosters from a OneRoster CSV bundle (1.1 or 1.2).

A bundle is a folder or a ``.zip`` of CSV files: ``orgs.csv``, ``users.csv``, ``classes.csv`` and
``enrollments.csv`` (``academicSessions.csv``, ``roles.csv`` and ``manifest.csv`` optional; other
files are ignored with a note). Real exports differ: 1.1 puts a user's ``role`` in ``users.csv``,
1.2 in ``roles.csv``; headers come in any case, with a byte-order mark and CRLF line ends; grades
are CEDS codes (``KG``, ``04``, ``"04,05"``). Every bad row is named by file, line and field.

Ids are pseudonymous: a ``sourcedId`` that is a plain id is kept (it is what an LMS sends as the
xAPI ``account.name``, so statements and roster meet on one learner); anything else, an e-mail
address above all, is replaced by a salted hash (:func:`engine.xapi.account_id`). E-mail
addresses, user names, phone numbers and passwords are never read (a row holds only the columns
an import uses, whatever the case of the header); given and family names are kept for the
teacher's views and erased with the learner.

A bundle applies to the tenant's current roster (:meth:`Roster.apply`): a file sent in bulk
replaces its kind of record, a delta file (named so in ``manifest.csv``) adds, updates and deletes
(``status=tobedeleted``) rows, and a kind without a file is left as it is. Applying the same
bundle twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from engine.textfiles import TextFileError, decode_text, text_lines
from engine.xapi import account_id

__all__ = [
    "FIELDS",
    "KINDS",
    "Records",
    "Roster",
    "RosterBundle",
    "RosterError",
    "bundle_bytes",
    "held_id",
    "load_bundle",
    "open_zip",
    "read_bundle",
    "read_zip",
    "roster_grade",
]

#: the record kinds of a roster, their file and the columns each row needs
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "orgs": ("orgs.csv", ("sourcedId", "name", "type")),
    "sessions": ("academicSessions.csv", ("sourcedId", "title", "type", "startDate", "endDate")),
    "users": ("users.csv", ("sourcedId",)),
    "classes": ("classes.csv", ("sourcedId", "title", "schoolSourcedId")),
    "enrollments": ("enrollments.csv", ("sourcedId", "classSourcedId", "userSourcedId", "role")),
}
#: each kind's record fields, in the order a record is held in a worker's copy (see :class:`Records`)
FIELDS: dict[str, tuple[str, ...]] = {
    "orgs": ("name", "type", "parent"),
    "sessions": ("title", "type", "start", "end"),
    "users": ("given", "family", "role", "grade", "orgs"),
    "classes": ("title", "code", "grades", "school", "sessions"),
    "enrollments": ("class", "user", "role", "primary"),
}
#: the other columns of each kind's file an import reads; a row holds these and the needed ones
#: only (case aside), so e-mail addresses, user names, phone numbers and passwords are never held,
#: and a district's rows cost the import's process less
_READ: dict[str, tuple[str, ...]] = {
    "orgs": ("status", "parentSourcedId"),
    "sessions": ("status",),
    "users": (
        "status",
        "role",
        "givenName",
        "familyName",
        "preferredGivenName",
        "preferredFamilyName",
        "grades",
        "orgSourcedIds",
        "primaryOrgSourcedId",
    ),
    "classes": ("status", "classCode", "grades", "termSourcedIds"),
    "enrollments": ("status", "primary"),
}
_OPTIONAL_FILES = {"roles.csv", "manifest.csv"}
_FILES = {name.lower(): kind for kind, (name, _) in KINDS.items()}
#: CEDS grade levels -> the engine's grade labels (None: not a grade the standards cover)
_CEDS = {"IT": "PK", "PR": "PK", "PK": "PK", "TK": "K", "KG": "K", "K": "K", "HS": "HS"}
_ROLES = ("student", "teacher", "administrator", "aide", "guardian", "parent", "proctor", "relative")
#: what a zip's files may unpack to (a zip bomb's guard): a district's users and enrollments,
#: with 36-character ids in every column, are about 1.3 kB a student (the benchmark's export)
_MAX_BYTES = 512 * 1024 * 1024
#: records between two calls of a long build's ``pause`` (a few milliseconds of work)
PAUSE_EVERY = 2000
#: values this long or shorter are shared between the rows of a file: a UUID (36 characters) is
#: too, since a class's or a school's is in each of its enrollments (longer ones, e-mail addresses
#: and titles, repeat less)
_SHARED_LEN = 40


class RosterError(ValueError):
    """A bundle that cannot be read; the message names the file, the line and the field."""


def roster_grade(value: str) -> str | None:
    """The grade label of a CEDS grade code, or None for codes outside K-12 (``13``, ``UG``...).

    >>> [roster_grade(v) for v in ("KG", "04", "4", "12", "PS", "Other")]
    ['K', '4', '4', '12', None, None]
    """
    code = value.strip().upper()
    if code in _CEDS:
        return _CEDS[code]
    if code.isdigit() and 1 <= int(code) <= 12:
        return str(int(code))
    return None


@dataclass
class RosterBundle:
    """The rows of a bundle, read and checked file by file (references are checked on apply)."""

    source: str
    rows: dict[str, list[tuple[int, Mapping[str, str]]]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # kind -> bulk | delta
    roles: dict[str, tuple[int, str]] = field(default_factory=dict)  # user sourcedId -> (line, primary role)
    notes: list[str] = field(default_factory=list)

    def where(self, kind: str, line: int, column: str) -> str:
        return f"{self.source}/{KINDS[kind][0]} line {line}, field {column!r}"


def _decode(name: str, data: bytes) -> str:
    try:
        return decode_text(data, name)
    except TextFileError as exc:
        raise RosterError(str(exc)) from None


class _Row(Mapping[str, str]):
    """A file's row: its values in one tuple, named by the file's columns (one mapping for all its
    rows). A dict a row cost a district's enrollments about 130 MB more."""

    __slots__ = ("_at", "_values")

    def __init__(self, at: dict[str, int], values: tuple[str, ...]):
        self._at, self._values = at, values

    def __getitem__(self, name: str) -> str:
        return self._values[self._at[name]]

    def get(self, name: str, default: Any = None) -> Any:
        at = self._at.get(name)
        return default if at is None else self._values[at]

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def __repr__(self) -> str:
        return f"_Row({dict(self)!r})"


def _table(
    name: str, text: str, required: tuple[str, ...], also: tuple[str, ...] | None = None
) -> Iterator[tuple[int, Mapping[str, str]]]:
    """(line, row) pairs with the header's columns matched without regard to case or spaces; a
    row holds the ``required`` columns and those of ``also`` the header has (None: every column)."""
    reader = csv.reader(text_lines(text))
    try:
        header = next(reader)
    except StopIteration:
        raise RosterError(f"{name}: empty file; expected a header with {', '.join(required)}") from None
    except csv.Error as exc:
        raise RosterError(f"{name} line 1: {exc}") from None
    canonical = {c.lower(): c for c in (*required, *(also or ()))}
    columns = [canonical.get(c.strip().lower(), c.strip()) for c in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise RosterError(f"{name}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'no columns'}")
    named = set(canonical.values())
    held = [i for i, c in enumerate(columns) if also is None or c in named]
    at = {columns[i]: k for k, i in enumerate(held)}  # a column twice: the last one's value, as a dict would
    line = reader.line_num
    # a district's files repeat most short values (a status, a date, a role, a school's or a
    # class's id) hundreds of thousands of times: the rows share one copy of each
    shared: dict[str, str] = {}
    try:
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(columns):
                raise RosterError(f"{name} line {start}: {len(values)} fields, the header has {len(columns)}")
            picked = []
            for i in held:
                v = values[i].strip() if i < len(values) else ""
                picked.append(shared.setdefault(v, v) if len(v) <= _SHARED_LEN else v)
            yield start, _Row(at, tuple(picked))
    except csv.Error as exc:
        raise RosterError(f"{name} line {line + 1}: {exc}") from None


def read_bundle(files: Mapping[str, bytes], source: str) -> RosterBundle:
    """Read a bundle given as file name -> bytes (names may carry a folder, as in a zip)."""
    bundle = RosterBundle(source)
    # each file is read when its turn comes (a zip's members are unpacked then), so only one
    # file's bytes and text are held at a time beside the rows read so far
    by_name: dict[str, tuple[str, str]] = {}
    for path in files:
        base = path.replace("\\", "/").rsplit("/", 1)[-1]
        if not base or base.startswith((".", "__MACOSX")) or "__MACOSX/" in path:
            continue
        if base.lower() in _FILES or base.lower() in _OPTIONAL_FILES:
            by_name[base.lower()] = (base, path)
        else:
            bundle.notes.append(f"{source}/{base}: not a file this import reads; ignored")
    manifest: dict[str, str] = {}
    if "manifest.csv" in by_name:
        name, path = by_name["manifest.csv"]
        where = f"{source}/{name}"
        for _, row in _table(where, _decode(where, files[path]), ("propertyName", "value"), ()):
            manifest[row["propertyName"]] = row["value"].lower()
    for kind, (file_name, required) in KINDS.items():
        mode = manifest.get(f"file.{file_name.removesuffix('.csv')}", "")
        if file_name.lower() not in by_name:
            if mode in ("bulk", "delta"):
                raise RosterError(
                    f"{source}/manifest.csv: names {file_name} as {mode}, but the bundle has no such file"
                )
            continue
        if mode == "absent":
            bundle.notes.append(f"{source}/{file_name}: the manifest says absent; ignored")
            continue
        if mode not in ("", "bulk", "delta"):
            raise RosterError(
                f"{source}/manifest.csv: field 'value' of file.{file_name[:-4]} is {mode!r}; expected bulk, delta or absent"
            )
        name, path = by_name[file_name.lower()]
        where = f"{source}/{name}"
        bundle.rows[kind] = list(_table(where, _decode(where, files[path]), required, _READ[kind]))
        bundle.modes[kind] = mode or "bulk"
    if "roles.csv" in by_name:  # OneRoster 1.2: a user's roles live here, not in users.csv
        name, path = by_name["roles.csv"]
        where = f"{source}/{name}"
        for line, row in _table(where, _decode(where, files[path]), ("userSourcedId", "role", "roleType"), ("status",)):
            if row.get("status", "").lower() == "tobedeleted":
                continue
            if row["role"].lower() not in _ROLES:
                raise RosterError(
                    f"{where} line {line}, field 'role': {row['role']!r}; expected one of {', '.join(_ROLES)}"
                )
            if row["roleType"].lower() == "primary" or row["userSourcedId"] not in bundle.roles:
                bundle.roles[row["userSourcedId"]] = (line, row["role"].lower())
    for kind in ("orgs", "users", "classes", "enrollments"):
        if kind not in bundle.rows:
            bundle.notes.append(f"{source}: no {KINDS[kind][0]}; the roster's {kind} are kept as they were")
    return bundle


def load_bundle(path: str | Path) -> RosterBundle:
    """Read a OneRoster bundle from a folder of CSV files or a ``.zip`` file."""
    path = Path(path)
    if _is_zip(path):
        return read_zip(path.read_bytes(), str(path))
    return read_bundle(_folder_files(path), str(path))


def bundle_bytes(path: str | Path) -> bytes:
    """A OneRoster bundle as the bytes of a zip file (what an upload sends): a ``.zip`` file's
    own, or a folder's CSV files zipped."""
    path = Path(path)
    if _is_zip(path):
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in _folder_files(path).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _is_zip(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)


def _folder_files(path: Path) -> dict[str, bytes]:
    """The files of a bundle's folder by name, or a :class:`RosterError` saying what ``path`` is."""
    if path.is_dir():
        return {child.name: child.read_bytes() for child in sorted(path.iterdir()) if child.is_file()}
    if path.exists():
        raise RosterError(f"{path}: expected a folder of OneRoster CSV files or a .zip of them")
    raise RosterError(f"{path}: not found; expected a folder of OneRoster CSV files or a .zip of them")


#: what ``zipfile`` raises for a damaged or unusual archive: a bad directory (offsets that point
#: before the file: ``ValueError``), a method it cannot read (``NotImplementedError``, e.g.
#: deflate64), a damaged stream (``zlib.error``, ``OSError``), a password (``RuntimeError``)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    EOFError,
    ValueError,
    OSError,
    RuntimeError,
    zlib.error,
)


def open_zip(data: bytes, source: str) -> zipfile.ZipFile:
    """The zip file of ``data`` (only its directory is read), or a :class:`RosterError`."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise RosterError(f"{source}: not a readable zip file ({exc})") from None


def read_zip(data: bytes, source: str) -> RosterBundle:
    """Read a bundle sent as the bytes of a zip file (folders inside are flattened)."""
    archive = open_zip(data, source)
    members = {m.filename: m for m in archive.infolist() if not m.is_dir()}
    if sum(m.file_size for m in members.values()) > _MAX_BYTES:
        raise RosterError(f"{source}: the files unpack to more than {_MAX_BYTES // 2**20} MB")
    return read_bundle(_Members(archive, members, source), source)


class _Members(Mapping[str, bytes]):
    """A zip's files by name, each unpacked when asked for (not kept)."""

    def __init__(self, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], source: str):
        self.archive, self.members, self.source = archive, members, source

    def __getitem__(self, name: str) -> bytes:
        try:
            return self.archive.read(self.members[name])
        except _ZIP_ERRORS as exc:
            raise RosterError(f"{self.source}: not a readable zip file ({name}: {exc})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


def _grades(value: str) -> list[str]:
    return [g for g in (roster_grade(v) for v in value.replace(";", ",").split(",") if v.strip()) if g]


def _held(value: Any, inner: bool = False) -> Any:
    """A record's value as a compact row holds it: a string interned (ids, roles and names
    repeat across records; an interned string still goes when its last holder does), a list (of
    plain values) as a tuple; ``TypeError`` for a value a row does not hold (the record is then
    kept as it is)."""
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is list and not inner:
        return tuple([sys.intern(v) if type(v) is str else _held(v, True) for v in value])
    if value is None or kind is bool or kind is int or kind is float:
        return value
    raise TypeError(kind)


def _general_row(get: Callable[[Mapping[str, Any]], tuple[Any, ...]]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The row of a record whose fields ``get`` picks, in order."""
    intern = sys.intern

    def row(record: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            [intern(v) if type(v) is str else v if v is None or type(v) is bool else _held(v) for v in get(record)]
        )

    return row


def _enrollment_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """An enrollment's row (the bulk of a district's roster, so spelled out: a third of the
    general row's time)."""
    primary = record["primary"]
    if type(primary) is not bool:
        raise TypeError(type(primary))
    intern = sys.intern
    return intern(record["class"]), intern(record["user"]), intern(record["role"]), primary


def _user_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """A user's row, spelled out as an enrollment's."""
    grade, orgs = record["grade"], record["orgs"]
    if type(orgs) is not list:
        raise TypeError(type(orgs))
    intern = sys.intern
    return (
        intern(record["given"]),
        intern(record["family"]),
        intern(record["role"]),
        grade if grade is None else intern(grade),
        tuple(map(intern, orgs)),
    )


#: the kinds whose rows are made by a function of their own (each makes the general row's tuple)
_ROW_MAKERS = {"enrollments": _enrollment_row, "users": _user_row}


def held_id(kind: str, key: str) -> str:
    """The id as a roster holds it: a user's, class's, org's or session's is interned (every
    enrollment names one), an enrollment's own is named by none and is kept as it is."""
    return key if kind == "enrollments" else sys.intern(key)


class Records(MutableMapping[str, dict[str, Any]]):
    """One kind of a roster's records by id, held compactly: a district's roster is more than
    half a million records, in every worker that serves its teachers. A record with exactly its
    kind's :data:`FIELDS` is held as a tuple of their values, its strings interned (one string
    of a class's id for all its enrollments), a list as a tuple; reading it builds a new dict (so
    a record read is never changed in the roster by its reader: it is written back, or not at
    all). A record of other fields, or of other values, is kept as a dict."""

    __slots__ = ("_fields", "_make", "_position", "_rows", "kind")

    def __init__(self, kind: str, records: Mapping[str, Mapping[str, Any]] | None = None):
        self.kind = kind
        self._fields = FIELDS[kind]
        self._make = _ROW_MAKERS.get(kind) or _general_row(itemgetter(*self._fields))
        self._position = {name: i for i, name in enumerate(self._fields)}
        self._rows: dict[str, tuple[Any, ...] | dict[str, Any]] = {}
        for key, record in (records or {}).items():
            self[key] = record

    # ------------------------------------------------------------------ the mapping
    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._record(self._rows[key])

    def __setitem__(self, key: str, record: Mapping[str, Any]) -> None:
        self._rows[held_id(self.kind, key)] = self._row(record)

    def __delitem__(self, key: str) -> None:
        del self._rows[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            return self.kind == other.kind and self._rows == other._rows
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Records({self.kind!r}, {len(self)} records)"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its kind and rows (a roster may go to another process, a Ray task's)."""
        return _records_of_rows, (self.kind, self._rows)

    def clear(self) -> None:
        self._rows.clear()

    def copy(self) -> Records:
        """A new mapping of the same records (rows are immutable: nothing else is copied)."""
        return _records_of_rows(self.kind, dict(self._rows))

    # ------------------------------------------------------------------ reading without a dict
    def value(self, key: str, name: str, default: Any = None) -> Any:
        """One field of a record (``default`` if the record lacks it), without building the record."""
        row = self._rows[key]
        if type(row) is tuple:
            value = row[self._position[name]] if name in self._position else default
            return list(value) if type(value) is tuple else value
        return row.get(name, default)  # type: ignore[union-attr]

    def column(self, name: str, pause: Callable[[], None] | None = None) -> list[Any]:
        """One field of every record, in the order of the ids (None where a record lacks it);
        ``pause`` is called every few thousand records."""
        rows, out = list(self._rows.values()), []
        at = self._position.get(name)
        for start in range(0, len(rows), PAUSE_EVERY):
            out += [
                (list(row[at]) if type(row[at]) is tuple else row[at])
                if at is not None and type(row) is tuple
                else row.get(name)
                if type(row) is dict
                else None
                for row in rows[start : start + PAUSE_EVERY]
            ]
            if pause is not None:
                pause()
        return out

    def parts(self) -> list[Any]:
        """The containers this mapping is made of (its rows by id), for one that takes a copy
        nobody else holds apart a piece at a time (see ``serving.rosters``)."""
        return [self._rows]

    def differs(self, other: Records, key: str) -> bool:
        """Whether the record ``key`` of this mapping is not the one of ``other`` (absent there, or changed)."""
        return other._rows.get(key) != self._rows[key]

    # ------------------------------------------------------------------ rows
    def _row(self, record: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if len(record) == len(self._fields):
            try:  # the same number of fields, each found: the same fields
                return self._make(record)
            except (KeyError, TypeError):
                pass
        return {k: list(v) if type(v) is list else v for k, v in record.items()}

    def _record(self, row: tuple[Any, ...] | dict[str, Any]) -> dict[str, Any]:
        if type(row) is tuple:
            return {name: list(v) if type(v) is tuple else v for name, v in zip(self._fields, row)}
        return {k: list(v) if type(v) is list else v for k, v in row.items()}  # type: ignore[union-attr]


def _records_of_rows(kind: str, rows: dict[str, tuple[Any, ...] | dict[str, Any]]) -> Records:
    """Records holding these rows as they are (a copy's, or an unpickled one's)."""
    out = Records(kind)
    out._rows = rows
    return out


def _tuples(index: dict[str, list[str]], pause: Callable[[], None] | None) -> dict[str, tuple[str, ...]]:
    """The index with each list as a tuple (``pause`` called every few thousand). ``index`` is
    emptied as it goes: each list is freed once its tuple is made, so a district's 135,000 lists
    are not all freed at once when the index goes (a 50 ms stall of the requests beside it)."""
    names, out = list(index), dict[str, tuple[str, ...]]()
    for start in range(0, len(names), PAUSE_EVERY):
        for name in names[start : start + PAUSE_EVERY]:
            out[name] = tuple(index.pop(name))
        if pause is not None:
            pause()
    return out


def _kind(kind: str) -> Any:
    return field(default_factory=lambda: Records(kind))


@dataclass
class Roster:
    """A tenant's roster: each kind's JSON-ready records, keyed by pseudonymous id (held
    compactly, see :class:`Records`; plain mappings given are held so)."""

    orgs: Records = _kind("orgs")
    sessions: Records = _kind("sessions")
    users: Records = _kind("users")
    classes: Records = _kind("classes")
    enrollments: Records = _kind("enrollments")
    #: (class -> its enrollments' keys, user -> theirs), built on first read: a roster is read on
    #: every request of a teacher's key, so membership must not scan every enrollment
    _index: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for kind in KINDS:  # records given as plain mappings are held as Records
            given = getattr(self, kind)
            if not isinstance(given, Records):
                setattr(self, kind, Records(kind, given))

    def _enrollment_index(
        self, pause: Callable[[], None] | None = None
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        if self._index is None:
            by_class: dict[str, list[str]] = {}
            by_user: dict[str, list[str]] = {}
            enrollments = self.enrollments
            in_class, of_user = enrollments.column("class", pause), enrollments.column("user", pause)
            for k, (key, class_id, user_id) in enumerate(zip(enrollments, in_class, of_user)):
                by_class.setdefault(class_id, []).append(key)
                by_user.setdefault(user_id, []).append(key)
                if pause is not None and k % PAUSE_EVERY == 0:
                    pause()
            # tuples: a class's or a user's few enrollments cost a fraction of a set's memory
            self._index = (_tuples(by_class, pause), _tuples(by_user, pause))
        return self._index

    def indexed(self, pause: Callable[[], None] | None = None) -> Roster:
        """This roster, its membership index built now (a reader builds it once per version, not
        within a request). ``pause`` is called every few thousand enrollments (a server's worker
        rests there, see ``serving.pacing``)."""
        self._enrollment_index(pause)
        return self

    def parts(self) -> list[Any]:
        """The containers this roster is made of: each kind's records and the membership index
        (see :meth:`Records.parts`)."""
        return [getattr(self, kind) for kind in KINDS] + ([self._index] if self._index is not None else [])

    def to_json(self) -> dict[str, Any]:
        return {kind: {k: getattr(self, kind)[k] for k in sorted(getattr(self, kind))} for kind in KINDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Roster:
        data = data or {}
        return cls(**{kind: Records(kind, data.get(kind) or {}) for kind in KINDS})

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[str, str, dict[str, Any]]], pause: Callable[[], None] | None = None
    ) -> Roster:
        """A roster of ``(kind, id, record)`` records (a store's); ``pause`` as :meth:`indexed`'s."""
        roster = cls()
        kinds: dict[str, Records] = {kind: getattr(roster, kind) for kind in KINDS}
        for k, (kind, key, record) in enumerate(records):
            held = kinds[kind]
            held._rows[held_id(kind, key)] = held._row(record)  # what held[key] = record does, a call less
            if pause is not None and k % PAUSE_EVERY == 0:
                pause()
        return roster

    def with_changes(
        self, written: Iterable[tuple[str, str, dict[str, Any]]], removed: Iterable[tuple[str, str]]
    ) -> Roster:
        """A new roster: this one with ``(kind, id, record)`` records written and ``(kind, id)``
        removed. What a reader does with a store's changes: it costs the changes (and a shallow
        copy of each kind), not a new parse of the roster, and the membership index is carried
        over with only the classes and users the changed enrollments name copied. This roster is
        left as it is (other threads may be reading it)."""
        written, removed = list(written), list(removed)
        kinds = {kind for kind, _, _ in written} | {kind for kind, _ in removed}
        out = Roster(**{kind: getattr(self, kind).copy() if kind in kinds else getattr(self, kind) for kind in KINDS})
        for kind, key in removed:
            getattr(out, kind).pop(key, None)
        for kind, key, record in written:
            getattr(out, kind)[key] = record
        if self._index is None or "enrollments" not in kinds:
            out._index = self._index
            return out
        keys = {key for kind, key, _ in written if kind == "enrollments"}
        keys |= {key for kind, key in removed if kind == "enrollments"}
        by_class, by_user = dict(self._index[0]), dict(self._index[1])
        edited: dict[tuple[int, str], list[str]] = {}  # (0 class | 1 user, id) -> its keys, copied

        def edit(which: int, name: str) -> list[str]:
            found = edited.get((which, name))
            if found is None:
                found = edited[which, name] = list((by_user if which else by_class).get(name, ()))
            return found

        for key in keys:
            for records in (self.enrollments, out.enrollments):
                if key in records:
                    for which, name in enumerate((records.value(key, "class"), records.value(key, "user"))):
                        held = edit(which, name)
                        if key in held:
                            held.remove(key)
            if key in out.enrollments:
                edit(0, out.enrollments.value(key, "class")).append(key)
                edit(1, out.enrollments.value(key, "user")).append(key)
        for (which, name), held in edited.items():
            index = by_user if which else by_class
            if held:
                index[name] = tuple(held)
            else:
                index.pop(name, None)
        out._index = (by_class, by_user)
        return out

    # ------------------------------------------------------------------ reading
    def members(self, class_id: str, role: str | None = None) -> list[str]:
        """User ids enrolled in the class (with that role), in a stable order."""
        keys = self._enrollment_index()[0].get(class_id, ())
        value = self.enrollments.value
        return sorted({value(k, "user") for k in keys if role is None or value(k, "role") == role})

    def classes_of(self, user_id: str) -> list[str]:
        value = self.enrollments.value
        return sorted({value(k, "class") for k in self._enrollment_index()[1].get(user_id, ())})

    def classes_taught(self, teacher: str) -> list[str]:
        """The classes ``teacher`` is enrolled in as a teacher, in id order (the index's: a
        district has thousands of classes)."""
        value = self.enrollments.value
        by_user = self._enrollment_index()[1]
        return sorted({value(k, "class") for k in by_user.get(teacher, ()) if value(k, "role") == "teacher"})

    def students_of(self, teacher: str) -> frozenset[str]:
        """The students of every class ``teacher`` teaches."""
        by_class = self._enrollment_index()[0]
        value = self.enrollments.value
        return frozenset(
            value(k, "user")
            for class_id in self.classes_taught(teacher)
            for k in by_class.get(class_id, ())
            if value(k, "role") == "student"
        )

    def grade_of(self, user_id: str) -> str | None:
        """A student's grade: their own, else the one grade all their classes share."""
        if user_id not in self.users:
            return None
        grade = self.users.value(user_id, "grade")
        if grade:
            return str(grade)
        if self.users.value(user_id, "role") != "student":
            return None
        classes = self.classes
        shared = {g for c in self.classes_of(user_id) if c in classes for g in classes.value(c, "grades") or ()}
        return shared.pop() if len(shared) == 1 else None

    def name_of(self, user_id: str) -> str:
        user = self.users.get(user_id) or {}
        return " ".join(p for p in (user.get("given", ""), user.get("family", "")) if p) or user_id

    def counts(self) -> dict[str, int]:
        roles = self.users.column("role")
        return {
            "orgs": len(self.orgs),
            "sessions": len(self.sessions),
            "users": len(self.users),
            "students": roles.count("student"),
            "teachers": roles.count("teacher"),
            "classes": len(self.classes),
            "enrollments": len(self.enrollments),
        }

    def records_of_users(self, user_ids: Iterable[str]) -> list[tuple[str, str]]:
        """The ``(kind, id)`` records erasing these users removes: theirs and their enrollments."""
        by_user = self._enrollment_index()[1]
        wanted = list(dict.fromkeys(user_ids))
        found = [("users", u) for u in wanted if u in self.users]
        return found + [("enrollments", k) for u in wanted for k in sorted(by_user.get(u, ()))]

    # ------------------------------------------------------------------ applying a bundle
    def apply(self, bundle: RosterBundle, tenant: str) -> Roster:
        """The roster after ``bundle``: bulk files replace, delta files merge (see the module docstring).
        Raises :class:`RosterError` naming the file, line and field of the first bad row."""
        ids: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # kind -> sourcedId -> our id
        # each kind's mapping is copied (its rows are immutable); a row's record is resolved and
        # held in the result as it is read: the kinds come in the order they name each other
        # (an org names its parent, an org of the same file, set once the orgs are all read)
        result = Roster(**{kind: getattr(self, kind).copy() for kind in KINDS})

        def our_id(kind: str, source_id: str) -> str:
            return account_id(source_id, f"{tenant}\x1f{kind}")

        def resolve(kind: str, row_kind: str, line: int, column: str, source_id: str) -> str:
            """The id of a record a row names, which must be in the roster after the apply (from
            this bundle or from before); the kinds read before this row's are whole by then."""
            key = ids[kind].get(source_id) or our_id(kind, source_id)
            if key not in getattr(result, kind):
                raise RosterError(
                    f"{bundle.where(row_kind, line, column)}: {source_id!r} is no {kind[:-1]} of the roster"
                    f" (not in {KINDS[kind][0]})"
                )
            return key

        for kind in KINDS:
            rows = bundle.rows.get(kind)
            if rows is None:
                continue
            current: Records = getattr(result, kind)
            if bundle.modes[kind] == "bulk":
                current.clear()
            by_source = ids[kind] if kind != "enrollments" else {}  # no row names an enrollment
            seen: dict[str, int] = {}
            for line, row in rows:
                source_id = row["sourcedId"]
                if not source_id:
                    raise RosterError(f"{bundle.where(kind, line, 'sourcedId')} is empty; every row needs an id")
                if source_id in seen:
                    raise RosterError(
                        f"{bundle.where(kind, line, 'sourcedId')}: {source_id!r} repeats line {seen[source_id]}"
                    )
                seen[source_id] = line
                key = by_source[source_id] = our_id(kind, source_id)
                status = row.get("status", "").lower()
                if status == "tobedeleted":  # a user's or class's enrollments go with it (below)
                    current.pop(key, None)
                    continue
                if status not in ("", "active"):
                    raise RosterError(
                        f"{bundle.where(kind, line, 'status')}: {status!r}; expected active or tobedeleted"
                    )
                record = self._record(kind, row, line, bundle)
                if kind == "classes":
                    record["school"] = resolve("orgs", kind, line, "schoolSourcedId", row["schoolSourcedId"])
                    terms = [t.strip() for t in row.get("termSourcedIds", "").split(",") if t.strip()]
                    if "sessions" in bundle.rows or len(result.sessions):
                        record["sessions"] = [resolve("sessions", kind, line, "termSourcedIds", t) for t in terms]
                elif kind == "users":
                    orgs = [o.strip() for o in row.get("orgSourcedIds", "").split(",") if o.strip()]
                    primary = row.get("primaryOrgSourcedId", "")
                    record["orgs"] = [
                        resolve("orgs", kind, line, "orgSourcedIds", o)
                        for o in dict.fromkeys([*orgs, *filter(None, [primary])])
                    ]
                elif kind == "enrollments":
                    record["class"] = resolve("classes", kind, line, "classSourcedId", row["classSourcedId"])
                    record["user"] = resolve("users", kind, line, "userSourcedId", row["userSourcedId"])
                current[key] = record
            if kind == "orgs":
                for line, row in rows:
                    key = ids["orgs"][row["sourcedId"]]
                    if key in current and row.get("parentSourcedId"):
                        parent = resolve("orgs", "orgs", line, "parentSourcedId", row["parentSourcedId"])
                        current[key] = {**current[key], "parent": parent}
        # a user's role: users.csv (1.1), else roles.csv (1.2), else their enrollments (below)
        users = result.users
        for source_id, (_line, role) in bundle.roles.items():
            key = ids["users"].get(source_id) or our_id("users", source_id)
            if key in users and not users.value(key, "role"):
                users[key] = {**users[key], "role": role}
        # enrollments of users or classes that are gone go with them
        enrollments = result.enrollments
        named = zip(list(enrollments), enrollments.column("class"), enrollments.column("user"))
        for key in [k for k, c, u in named if c not in result.classes or u not in result.users]:
            del enrollments[key]
        result._index = None
        by_user = result._enrollment_index()[1]
        for key in list(result.users):
            if not result.users.value(key, "role"):
                enrolled = sorted({enrollments.value(k, "role") for k in by_user.get(key, ())})
                role = "teacher" if "teacher" in enrolled else (enrolled[0] if enrolled else "student")
                result.users[key] = {**result.users[key], "role": role}
        return result

    @staticmethod
    def _record(kind: str, row: Mapping[str, str], line: int, bundle: RosterBundle) -> dict[str, Any]:
        if kind == "orgs":
            return {"name": row["name"], "type": row["type"].lower(), "parent": None}
        if kind == "sessions":
            return {"title": row["title"], "type": row["type"], "start": row["startDate"], "end": row["endDate"]}
        if kind == "users":
            role = row.get("role", "").lower()
            if role and role not in _ROLES:
                raise RosterError(f"{bundle.where(kind, line, 'role')}: {role!r}; expected one of {', '.join(_ROLES)}")
            grades = _grades(row.get("grades", ""))
            return {
                "given": row.get("preferredGivenName") or row.get("givenName", ""),
                "family": row.get("preferredFamilyName") or row.get("familyName", ""),
                "role": role,
                "grade": grades[-1] if grades else None,
                "orgs": [],
            }
        if kind == "classes":
            return {
                "title": row["title"],
                "code": row.get("classCode", ""),
                "grades": _grades(row.get("grades", "")),
                "school": None,
                "sessions": [],
            }
        role = row["role"].lower()
        if role not in _ROLES:
            raise RosterError(f"{bundle.where(kind, line, 'role')}: {role!r}; expected one of {', '.join(_ROLES)}")
        return {"class": None, "user": None, "role": role, "primary": row.get("primary", "").lower() == "true"}
