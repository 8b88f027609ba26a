"""CSV imports: one service behind the dashboard upload, the API and `manage.py import_contacts`.

The file is streamed: each row is checked in Python (address syntax, typed fields) and good rows
go through COPY into a temporary staging table; bad rows go to a report file with their row
number (the header is row 1, as a spreadsheet numbers it). Duplicates within the file are found
in SQL, so memory stays flat whatever the file's size. The merge into contacts and
subscriptions is one transaction: a failure part-way leaves nothing half-merged.

Modes:
- upsert: new addresses are created, existing ones updated (non-empty names replace, attributes
  merge); subscriptions to the chosen lists are confirmed, but a contact whose status is not
  `active` is never resubscribed, and a list the contact left stays left (both counted
  `protected`).
- add: only new addresses are created; existing contacts keep their fields but active ones are
  added to the chosen lists.
- unsubscribe: without lists, every address becomes `unsubscribed` (bounced, complained and
  blocklisted stay as they are) and leaves every list; with lists, only those subscriptions end.
  Unknown addresses are created unsubscribed, so a later import cannot add them as active.
- blocklist: every address becomes `blocklisted` and leaves every list; unknown addresses are
  created blocklisted.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import pickle
import re
import secrets
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from django.db import IntegrityError, connection, transaction
from django.utils.text import slugify

from contacts.models import (
    ContactStatus,
    CustomField,
    FieldType,
    ImportMode,
    SubscriptionStatus,
)
from contacts.validation import (
    FAST_ADDRESS,
    EmailError,
    address_flags,
    check_contact_language,
    check_contact_timezone,
    check_email,
    coerce_value,
)
from mailplatform.errors import Invalid

MAX_FIELD_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
NAME_LIMIT = 200
BUILTIN_HEADERS = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "firstname": "first_name",
    "givenname": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "language": "language",
    "lang": "language",
    "locale": "language",
    "timezone": "timezone",
    "tz": "timezone",
}
_NORMALISE = re.compile(r"[\s_\-.]+")

Progress = Callable[[str, int, int], None]


class ImportFileError(Invalid):
    """The file cannot be imported at all; the message says what is wrong and where."""

    default_code = "import_file"
    default_field = "file"


def normalise_header(header: str) -> str:
    return _NORMALISE.sub("", header.strip().lower())


# What a spreadsheet may read as the start of a formula or a command: OWASP's CSV injection list
# (= + - @ tab CR), ASVS 1.2.10's NUL, line feed, `|` and `%` (DDE and macro forms in old
# spreadsheets), and the full-width forms some spreadsheets fold to ASCII.
FORMULA_STARTS = frozenset("=+-@\t\r\n\0|%\uff1d\uff0b\uff0d\uff20")


def neutralise_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula: the one helper every CSV export uses.

    An empty cell stays empty (None too); a cell that starts with a formula character gets a
    leading `'`, which spreadsheets show as text and do not display.
    """
    text = "" if value is None else str(value)
    if text and text[0] in FORMULA_STARTS:
        return "'" + text
    return text


@dataclass
class CsvFormat:
    encoding: str
    delimiter: str
    headers: list[str]


def _detect_encoding(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        if not head.strip():
            raise ImportFileError("the file is empty")
        if head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        else:
            if b"\x00" in head:
                raise ImportFileError("the file looks binary (it contains NUL bytes), not like CSV text")
            encoding = "utf-8"
        handle.seek(0)
        # Strict UTF-8 over the whole file first: one stray byte means it is not UTF-8.
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        offset = 0
        try:
            while chunk := handle.read(1024 * 1024):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError as exc:
            utf8_error = f"byte 0x{exc.object[exc.start]:02x} at offset {offset + exc.start}"
        if encoding == "utf-8-sig":
            raise ImportFileError(f"the file starts with a UTF-8 marker but is not UTF-8 ({utf8_error})")
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("cp1252")("strict")
        offset = 0
        try:
            while chunk := handle.read(1024 * 1024):
                decoder.decode(chunk)
                offset += len(chunk)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                "the file is neither UTF-8 nor Windows-1252 text "
                f"(not UTF-8: {utf8_error}; not Windows-1252: byte 0x{exc.object[exc.start]:02x} "
                f"at offset {offset + exc.start})"
            ) from None
        return "cp1252"


def _detect_delimiter(first_line: str) -> str:
    # The header line decides: the candidate that splits it most, outside quotes; "," on a tie.
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _open_text(path: Path, encoding: str) -> tuple[IO[bytes], io.TextIOWrapper]:
    raw = path.open("rb")
    return raw, io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")


def _reader(text: IO[str], delimiter: str) -> Iterator[list[str]]:
    csv.field_size_limit(MAX_FIELD_BYTES)
    return csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)


def _csv_error(exc: csv.Error, row: int) -> ImportFileError:
    message = str(exc)
    if "field larger than field limit" in message:
        return ImportFileError(f"row {row}: a field is larger than 1 MB")
    if "unexpected end of data" in message:
        return ImportFileError(f"row {row}: a quoted field is never closed (unterminated quote)")
    return ImportFileError(f"row {row}: {message}")


def sniff(path: Path) -> CsvFormat:
    """Encoding, delimiter and header row; ImportFileError when the file is not usable CSV."""
    encoding = _detect_encoding(path)
    raw, text = _open_text(path, encoding)
    with raw, text:
        first_line = text.readline()
        text.seek(0)
        delimiter = _detect_delimiter(first_line)
        reader = _reader(text, delimiter)
        try:
            headers = next(reader, None)
        except csv.Error as exc:
            raise _csv_error(exc, 1) from None
    if not headers or not any(h.strip() for h in headers):
        raise ImportFileError("the file is empty (no header row)")
    return CsvFormat(encoding=encoding, delimiter=delimiter, headers=[h.strip() for h in headers])


def suggest_mapping(headers: list[str]) -> dict[str, str]:
    """Column index -> target ("email", a STANDARD_TARGETS name, "attr:<name>", "" to skip).

    Headers match built-in and custom field names ignoring case, spaces and underscores; any
    other column becomes a new text field named after it.
    """
    fields = {}
    for name, label in CustomField.objects.values_list("name", "label"):
        fields.setdefault(normalise_header(label), name)
        fields[normalise_header(name)] = name
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, header in enumerate(headers):
        key = normalise_header(header)
        if not key or header.strip().lower() in REPORT_COLUMNS:
            target = ""  # nameless, or the row number / problem a bad-rows file adds
        elif key in BUILTIN_HEADERS:
            target = BUILTIN_HEADERS[key]
        elif key in fields:
            target = f"attr:{fields[key]}"
        else:
            target = f"attr:{field_name_for(header, index)}"
        if target in used:
            target = ""  # a second column for the same target is ignored
        if target:
            used.add(target)
        mapping[str(index)] = target
    return mapping


def field_name_for(header: str, index: int) -> str:
    name = slugify(header).replace("-", "_")[:64].strip("_")
    return name or f"column_{index + 1}"


def preview(path: Path, rows: int = 5) -> tuple[CsvFormat, list[list[str]]]:
    fmt = sniff(path)
    raw, text = _open_text(path, fmt.encoding)
    sample: list[list[str]] = []
    with raw, text:
        reader = _reader(text, fmt.delimiter)
        try:
            next(reader)
            for record in reader:
                sample.append([value[:200] for value in record])
                if len(sample) >= rows:
                    break
        except csv.Error as exc:
            raise _csv_error(exc, len(sample) + 2) from None
    return fmt, sample


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicates: int = 0
    protected: int = 0
    report_path: str = ""
    lists: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "protected": self.protected,
        }


@dataclass
class _Column:
    index: int
    target: str
    kind: str = FieldType.TEXT


_TRUE = frozenset({"1", "true", "yes", "y", "on", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "off", "f"})
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
MEMO_CELLS = 4096  # distinct cells remembered per column: few cities, plans, dates, flags


def _coercer(kind: str) -> Callable[[str], Any]:
    """A per-type converter for the hot loop; the common shapes skip coerce_value's generality."""
    if kind == FieldType.NUMBER:

        def number(value: str) -> Any:
            if value.isascii() and value.isdigit() and len(value) < 16:
                return int(value)
            return coerce_value(kind, value)

        return number
    if kind == FieldType.BOOLEAN:

        def boolean(value: str) -> Any:
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            return coerce_value(kind, value)

        return boolean
    if kind == FieldType.TEXT:
        return str
    return lambda value: coerce_value(kind, value)


def _fragment_maker(target: str, kind: str) -> Callable[[str], str]:
    """cell -> its `"name":value` piece of the attributes' JSON ("" when the cell means no value);
    ValueError as the field's check raises it. The attributes object is these pieces joined, which
    is what encoding the dict gave (jsonb keeps the last of a repeated key, as the dict did)."""
    prefix = _encode_json(target) + ":"
    convert = _coercer(kind)

    def fragment(value: str) -> str:
        typed = convert(value)
        return "" if typed is None else prefix + _encode_json(typed)

    return fragment


def _resolve_columns(
    headers: list[str], mapping: dict[str, str]
) -> tuple[int, list[_Column], list[tuple[str, str]]]:
    """(email column, other columns, custom fields to create as (name, label))."""
    kinds = dict(CustomField.objects.values_list("name", "type"))
    email_index = None
    columns: list[_Column] = []
    new_fields: list[tuple[str, str]] = []
    for key, target in mapping.items():
        try:
            index = int(key)
        except ValueError:
            raise ImportFileError(f"column mapping names {key!r}, which is not a column number") from None
        if not 0 <= index < len(headers):
            raise ImportFileError(f"column mapping names column {index + 1}, but the file has {len(headers)}")
        if not target:
            continue
        if target == "email":
            email_index = index
        elif target in STANDARD_TARGETS:
            columns.append(_Column(index, target))
        elif target.startswith("attr:"):
            name = target[5:]
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                raise ImportFileError(f"column {index + 1}: {name!r} is not a usable field name")
            if name not in kinds:
                new_fields.append((name, headers[index][:200] or name))
                kinds[name] = FieldType.TEXT
            columns.append(_Column(index, name, kinds[name]))
        else:
            raise ImportFileError(f"column {index + 1}: unknown target {target!r}")
    if email_index is None:
        shown = ", ".join(repr(h) for h in headers[:10])
        raise ImportFileError(f"no email column: the header row has {shown}; name one column 'email'")
    return email_index, columns, new_fields


# The two columns the bad-rows file adds after the file's own: a re-import skips them.
REPORT_COLUMNS = ("import row", "import problem")


class _Report:
    """Bad rows, streamed to a CSV file as they are found: each row with the file's own columns as
    they were (so it can be fixed and imported again), then its row number and what was wrong."""

    def __init__(self, path: Path | None, headers: list[str] | None = None, keep: list | None = None) -> None:
        self.path = path
        self.headers = list(headers or ["email"])
        self.count = 0
        self.keep = keep  # (row, cells, reason) of each bad row, for callers without a file
        self.flagged = 0  # staged rows the seen-filter flagged: none, no duplicate to look for
        self.continued = False  # another process (a chunked import's reader) began the file
        self._handle = None
        self._writer = None

    def add(self, row: int, record: list[str], reason: str) -> None:
        self.count += 1
        if self.keep is not None:
            self.keep.append((row, record, reason))
        if self.path is None:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a" if self.continued else "w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._handle)
            if not self.continued:
                self._writer.writerow([neutralise_cell(h) for h in self.headers] + list(REPORT_COLUMNS))
        cells = [neutralise_cell(value.replace("\x00", "")[:10_000]) for value in record]
        cells += [""] * (len(self.headers) - len(cells))
        self._writer.writerow([*cells, row, neutralise_cell(reason[:500])])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


# The contact's own columns an import may fill, in stage order, each with its check (None: a name,
# checked for length in the loop). Language and zone take few distinct values: their checks are
# cached per import.
STANDARD_TARGETS: dict[str, Callable[[str], str] | None] = {
    "first_name": None,
    "last_name": None,
    "language": check_contact_language,
    "timezone": check_contact_timezone,
}
_STAGE_COLUMNS = f"(row_no, email, email_lower, {', '.join(STANDARD_TARGETS)}, attrs, raw)"


class _SeenFilter:
    """A Bloom filter of the addresses read so far: its size is bounded (at most 64 MB, about
    half a bit per byte of the file), where a set of the addresses grew with the file (~110 bytes
    an address, 1.1 GB at ten million). A row it says may have been seen keeps its cells in the
    stage (`raw`) so that, if the database finds it really is a duplicate, the report can show it;
    the database decides, so a false positive costs only those cells."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, file_bytes: int) -> None:
        size = 1 << 16
        while size < min(file_bytes // 2, 1 << 29):
            size <<= 1
        self._bits = bytearray(size >> 3)
        self._mask = size - 1

    def seen_or_add(self, key: str) -> bool:
        # Two probes: at the filter's size (32+ bits an address) about 0.4 % false positives,
        # each costing only its cells in the stage; a third probe cost more than it saved.
        h = hash(key)
        mask, bits = self._mask, self._bits
        a, b = h & mask, (h >> 32) & mask
        x, y = bits[a >> 3], bits[b >> 3]
        if (x >> (a & 7)) & 1 and (y >> (b & 7)) & 1:
            return True
        bits[a >> 3] = x | (1 << (a & 7))
        bits[b >> 3] |= 1 << (b & 7)
        return False


def _parse_into_stage(
    path: Path,
    fmt: CsvFormat,
    email_index: int,
    columns: list[_Column],
    stage: str,
    report: _Report,
    progress: Progress | None,
    *,
    drop_flagged: bool = False,
) -> tuple[int, int]:
    """COPY the file's good rows (`_file_rows`) into `stage`; (data rows read, duplicates)."""
    total = path.stat().st_size
    counter = _Counter()
    _copy_rows(
        stage,
        _file_rows(path, fmt, email_index, columns, report, counter, progress, drop_flagged=drop_flagged),
    )
    if progress:
        progress("reading", total, total)
    return counter.rows, _drop_duplicates(stage, report)


def _file_rows(
    path: Path,
    fmt: CsvFormat,
    email_index: int,
    columns: list[_Column],
    report: _Report,
    counter: _Counter,
    progress: Progress | None,
    *,
    drop_flagged: bool = False,
) -> Iterator[tuple]:
    """The stage rows of the file's good rows (`_staged_rows`), with csv and encoding errors as
    ImportFileError."""
    raw, text = _open_text(path, fmt.encoding)
    with raw, text:
        reader = _reader(text, fmt.delimiter)
        try:
            next(reader)
            yield from _staged_rows(
                reader, len(fmt.headers), email_index, columns, report, counter, progress,
                total=path.stat().st_size, done=raw.tell, drop_flagged=drop_flagged,
            )  # fmt: skip
        except _RecordError as exc:
            raise _file_error(exc, fmt) from None


def _file_error(exc: _RecordError, fmt: CsvFormat) -> ImportFileError:
    if isinstance(exc.error, csv.Error):
        return _csv_error(exc.error, exc.row)
    return ImportFileError(f"row {exc.row}: the text is not {fmt.encoding} ({exc.error.reason})")


class _RecordError(Exception):
    """The reader failed on row `row` (csv.Error or UnicodeDecodeError in `error`)."""

    def __init__(self, row: int, error: Exception) -> None:
        super().__init__(row, error)
        self.row = row
        self.error = error


def _stage_records(
    records: Iterable[list[str]],
    width: int,
    email_index: int,
    columns: list[_Column],
    stage: str,
    report: _Report,
    progress: Progress | None,
    *,
    total: int,
    done: Callable[[], int],
    drop_flagged: bool = False,
) -> int:
    """COPY the good rows of `records` (`_staged_rows`) into `stage`; returns the data rows read."""
    counter = _Counter()
    _copy_rows(
        stage,
        _staged_rows(
            records, width, email_index, columns, report, counter, progress,
            total=total, done=done, drop_flagged=drop_flagged,
        ),
    )  # fmt: skip
    return counter.rows


def _copy_rows(stage: str, rows: Iterable[tuple]) -> None:
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {stage} {_STAGE_COLUMNS} FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)


@dataclass
class _Counter:
    # Data rows read (good, bad and duplicate; not blank lines): all of them at the end, before
    # that as of the last progress report (the rows behind `done`).
    rows: int = 0
    flagged: int = 0  # rows the seen-filter flagged (staged with their cells in `raw`)
    done: int = 0  # bytes of the file read, as last reported


def _staged_rows(
    records: Iterable[list[str]],
    width: int,
    email_index: int,
    columns: list[_Column],
    report: _Report,
    counter: _Counter,
    progress: Progress | None,
    *,
    total: int,
    done: Callable[[], int],
    drop_flagged: bool = False,
) -> Iterator[tuple]:
    """The stage's rows (in `_STAGE_COLUMNS` order) of the good rows of `records`; bad rows go to
    `report`, and `counter` counts the rows read. A reader's csv.Error or UnicodeDecodeError comes
    out as _RecordError with the row it failed on. No database work: the chunked import runs this
    in its reading process while the database merges the slice before (`_merge_in_chunks`).

    With `drop_flagged`, role (info@ …) and disposable-domain addresses
    (`contacts.validation.address_flags`) go to the bad rows with the reason instead of the stage.

    Duplicates, keyed by the lower-cased address (the first valid row wins), are found by the
    database among the rows `_SeenFilter` flags (`_drop_duplicates`): memory stays flat whatever
    the file's size.

    This loop runs once a row (a million times for a million-row file), so it does each step
    the cheapest way that keeps the result: one compiled pattern proves most addresses valid
    (email-validator only for the rest), typed cells and their JSON pieces are remembered per
    column (a file has few distinct cities, plans, dates or flags), and the attributes' JSON is
    those pieces joined rather than a dict encoded.
    """
    positions = {target: position for position, target in enumerate(STANDARD_TARGETS)}
    checks = {n: lru_cache(maxsize=4096)(check) for n, check in STANDARD_TARGETS.items() if check is not None}
    standard = [
        (c.index, c.target, positions[c.target], checks.get(c.target))
        for c in columns
        if c.target in positions
    ]
    attrs = [
        (c.index, c.target, _fragment_maker(c.target, c.kind), {})
        for c in columns
        if c.target not in STANDARD_TARGETS
    ]
    fast_address = FAST_ADDRESS.fullmatch
    no_own = ("",) * len(positions)
    rows = 0
    seen = _SeenFilter(total)
    row_no = 1
    records = iter(records)
    try:
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise _RecordError(row_no + 1, exc) from None
            row_no += 1
            if len(record) != width or width == 1:
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # blank line
                if len(record) < width:
                    record.extend([""] * (width - len(record)))
                elif len(record) > width and any(v.strip() for v in record[width:]):
                    rows += 1
                    report.add(row_no, record, f"{len(record)} fields, but the header has {width}")
                    continue
            rows += 1
            if rows % 20000 == 0 and progress:
                counter.rows = rows  # as of the bytes this reports (a chunked import sizes slices by it)
                progress("reading", done(), total)
            if "\x00" in "".join(record):
                report.add(row_no, record, "contains a NUL character")
                continue
            address = record[email_index].strip()
            match = fast_address(address) if len(address) <= 254 else None
            if match is None:
                try:
                    email = check_email(address)
                except EmailError as exc:
                    report.add(row_no, record, f"email: {exc}")
                    continue
                key = email.lower()
            elif address.islower():
                email = key = address  # ASCII with no capital: already normalised and keyed
            else:
                email = match["local"] + "@" + match["domain"].lower()
                key = email.lower()
            if drop_flagged:
                flags = address_flags(email)
                if flags:
                    reason = f"email: a {' and '.join(flags)} address, dropped as asked"
                    report.add(row_no, record, reason)
                    continue
            problem = None
            if standard:
                own = list(no_own)
                for index, target, position, check in standard:
                    value = record[index].strip()
                    if not value:
                        continue  # an empty cell: the contact keeps (or defaults) its value
                    if check is None:
                        if len(value) > NAME_LIMIT:
                            problem = f"{target}: longer than {NAME_LIMIT} characters"
                            break
                        own[position] = value
                        continue
                    try:
                        own[position] = check(value)
                    except ValueError as exc:
                        problem = f"{target}: {exc}"
                        break
            else:
                own = no_own
            pieces = []
            if problem is None:
                for index, target, fragment, memo in attrs:
                    value = record[index]
                    if value == "":
                        continue
                    piece = memo.get(value)
                    if piece is None:
                        try:
                            piece = fragment(value)
                        except ValueError as exc:
                            problem = f"{target}: {exc}"
                            break
                        if len(memo) < MEMO_CELLS:
                            memo[value] = piece
                    if piece:
                        pieces.append(piece)
            if problem is not None:
                report.add(row_no, record, problem)
                continue
            raw_cells = None
            if seen.seen_or_add(key):
                raw_cells = record
                report.flagged += 1
                counter.flagged += 1
            yield (row_no, email, key, *own, "{" + ",".join(pieces) + "}", raw_cells)
    finally:
        counter.rows = rows


def _drop_duplicates(stage: str, report: _Report, *, analyze: bool = True) -> int:
    """Remove from `stage` every row whose address an earlier staged row has; report them (in
    row order, after the invalid rows) with their cells, streamed through a server-side cursor.
    The stage is complete here: its statistics are taken for this pass and the merge's joins,
    unless `analyze` is false (an API call's upsert: at most 10,000 rows, whose joins are hashed
    or probed whatever the statistics say)."""
    if analyze:
        with connection.cursor() as cursor:
            # Only the columns joins and filters use: the names' and the attributes' statistics
            # (jsonb above all) cost more than the plans need.
            cursor.execute(f"ANALYZE {stage} (row_no, email_lower, raw)")
    if not report.flagged:
        return 0
    duplicates = f"{stage}_duplicates"
    with connection.cursor() as cursor:
        count = _find_duplicates(cursor, stage, stage, duplicates)
        if not count:
            return 0
        # By row address (a TID scan of the few duplicates), not a join that hashes the whole stage.
        cursor.execute(f"DELETE FROM {stage} WHERE ctid = ANY(ARRAY(SELECT tid FROM {duplicates}))")  # noqa: S608
    _report_duplicates(duplicates, report)
    return count


def _find_duplicates(cursor: Any, flagged: str, stage: str, duplicates: str) -> int:
    """Fill `duplicates` (row_no, tid, first_row, raw) with the rows of `flagged` (a table or a
    subquery over the stage) whose address an earlier row of `stage` has; returns how many. Only
    flagged rows can be duplicates: the seen-filter never misses an address it saw."""
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE {duplicates} ON COMMIT DROP AS
        SELECT s.row_no, s.ctid AS tid, min(f.row_no) AS first_row, min(s.raw) AS raw
          FROM {flagged} s JOIN {stage} f ON f.email_lower = s.email_lower AND f.row_no < s.row_no
         WHERE s.raw IS NOT NULL
         GROUP BY s.row_no, s.ctid
        """  # noqa: S608
    )
    return cursor.rowcount


def _report_duplicates(duplicates: str, report: _Report) -> None:
    with connection.connection.cursor(name=f"{duplicates}_read") as rows:
        rows.itersize = 5000
        rows.execute(f"SELECT row_no, first_row, raw FROM {duplicates} ORDER BY row_no")  # noqa: S608
        for row_no, first_row, raw in rows:
            report.add(row_no, raw, f"duplicate of row {first_row}")


def _merge(
    stage: str,
    mode: str,
    list_ids: list[int],
    label: str,
    result: ImportResult,
    tmp: str = "",
    *,
    all_new: bool = False,
) -> None:
    """Merge the staged rows (`stage`: a table, or a parenthesised query over one) into contacts (and the lists' subscriptions), counting in `result`.

    Upsert and add go the split way (`_merge_split`): the file's rows that match a contact are
    found in one join, only those whose values change are updated, and the rest are plain
    inserts. `INSERT … ON CONFLICT` (`_merge_on_conflict`) took a speculative insertion per row
    (an index probe, then a heap tuple and index entries confirmed by an extra WAL record) and
    a conflict check on the subscription too, ~19 µs of backend CPU a row. Should an address
    appear between the join and the insert (a signup in the meantime), the insert's unique
    violation rolls the split merge back to its savepoint and the general statement runs instead.

    `tmp` names this merge's temporary tables (default: the stage's name). A chunked import's
    merges share them (emptied each time): a table made and dropped per slice would hold its
    locks until commit, and the lock table is shared by every session.
    `all_new`: the caller knows no staged address had a contact when the import began (the
    split merge then skips looking; one created since is caught by the fallback as above).
    """
    tmp = tmp or stage
    if mode in (ImportMode.UPSERT, ImportMode.ADD):
        try:
            with transaction.atomic():
                _merge_split(stage, mode, list_ids, label, result, tmp, all_new)
            return
        except IntegrityError:
            result.created = result.updated = result.unchanged = result.protected = 0
    _merge_on_conflict(stage, mode, list_ids, label, result, tmp)


def _changed(new: str, old: str) -> str:
    """SQL: the staged row `new` changes contact `old` (an empty cell keeps the contact's value)."""
    return (
        "("
        + "".join(f"({new}.{n} <> '' AND {new}.{n} <> {old}.{n}) OR " for n in STANDARD_TARGETS)
        + f"NOT ({old}.attributes @> {new}.attrs))"
    )


def _merge_split(
    stage: str, mode: str, list_ids: list[int], label: str, result: ImportResult, tmp: str, all_new: bool
) -> None:
    own = list(STANDARD_TARGETS)
    matched = f"{tmp}_matched"
    staged = result.rows - result.invalid - result.duplicates
    with connection.cursor() as cursor:
        existing, changing = (0, 0) if all_new else _match_existing(cursor, stage, matched, mode)
        if changing:
            # ANALYZE (narrow: cheap) lets the UPDATE probe contacts by id.
            _execute_all(
                cursor,
                f"""
                ANALYZE {matched};
                UPDATE contacts_contact c
                   SET {"".join(f"{n} = CASE WHEN s.{n} <> '' THEN s.{n} ELSE c.{n} END, " for n in own)}
                       attributes = c.attributes || s.attrs, updated_at = now()
                  FROM {matched} m JOIN {stage} s ON s.row_no = m.row_no
                 WHERE m.changed AND c.id = m.id AND {_changed("s", "c")}
                """,  # noqa: S608
            )
            result.updated = cursor.rowcount
        new_rows = f"FROM {stage} s"
        if existing:
            new_rows += f" WHERE NOT EXISTS (SELECT 1 FROM {matched} m WHERE m.row_no = s.row_no)"  # noqa: S608
        if existing < staged:
            # New contacts are plain inserts; their subscriptions too (no one else can know
            # these ids yet, so no conflict is possible), straight from RETURNING.
            subscribe = ""
            params: list[Any] = [ContactStatus.ACTIVE, label[:300]]
            if list_ids:
                subscribe = """, subscribed AS (
                    INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, source,
                        created_at, confirmed_at, updated_at)
                    SELECT n.id, l.id, %s, 'import', now(), now(), now()
                      FROM created n CROSS JOIN unnest(%s::bigint[]) AS l(id))"""
                params += [SubscriptionStatus.CONFIRMED, list_ids]
            cursor.execute(
                f"""
                WITH created AS (
                    INSERT INTO contacts_contact (email, {", ".join(own)}, attributes, status,
                        consent_at, consent_source, consent_detail, created_at, updated_at,
                        bounce_count, soft_bounce_count)
                    SELECT s.email, {", ".join(f"s.{n}" for n in own)}, s.attrs, %s, now(),
                           'import', %s, now(), now(), 0, 0
                      {new_rows}
                    RETURNING id){subscribe}
                SELECT count(*) FROM created
                """,  # noqa: S608
                params,
            )
            result.created = cursor.fetchone()[0]
        result.unchanged = staged - result.created - result.updated
        if existing:
            _settle_matched(cursor, matched, list_ids, result)


def _execute_all(cursor: Any, sql: str, params: list | None = None) -> None:
    """Run `sql`, statements separated by `;`, in one round trip (the cursor binds on the client),
    and stay on the last one's result. A chunked import runs its statements once a slice: on a
    loaded machine each round trip waits for both processes to be scheduled again."""
    cursor.execute(sql, params)
    while cursor.nextset():
        pass


def _match_existing(cursor: Any, stage: str, matched: str, mode: str) -> tuple[int, int]:
    """Fill `matched` (row_no, id, status, changed) with the staged rows that are contacts
    already; returns how many, and how many of them change. One pass finds them and whether the
    row changes each: a re-import of unchanged rows then writes nothing to contacts (no new tuple
    versions).

    Each row probes the unique index on lower(email) (the LIMIT keeps the planner from turning
    the lateral query into a join): a chunked import merges a slice of the file at a time, and a
    hash join would read the whole contacts table once per slice."""
    changed = _changed("s", "c") if mode == ImportMode.UPSERT else "false"
    own = "".join(f"c.{n}, " for n in STANDARD_TARGETS)
    _execute_all(
        cursor,
        f"""
        CREATE TEMPORARY TABLE IF NOT EXISTS {matched}
            (row_no bigint, id bigint, status text, changed boolean) ON COMMIT DROP;
        TRUNCATE {matched};
        WITH found AS (
            INSERT INTO {matched} (row_no, id, status, changed)
            SELECT s.row_no, c.id, c.status, {changed} AS changed
              FROM {stage} s CROSS JOIN LATERAL (
                   SELECT c.id, c.status, {own}c.attributes FROM contacts_contact c
                    WHERE lower(c.email) = s.email_lower LIMIT 1) c
            RETURNING changed)
        SELECT count(*), count(*) FILTER (WHERE changed) FROM found
        """,  # noqa: S608
    )
    existing, changing = cursor.fetchone()
    return existing, changing


def _settle_matched(cursor: Any, matched: str, list_ids: list[int], result: ImportResult) -> None:
    """The file's existing contacts (`matched`: id, status): count the protected (not active, or
    active but gone from one of the lists) and subscribe the active ones to the lists."""
    inactive = f"SELECT count(*) FROM {matched} WHERE status <> %s"  # noqa: S608
    if not list_ids:
        cursor.execute(inactive, [ContactStatus.ACTIVE])
        result.protected = cursor.fetchone()[0]
        return
    # One probe of the unique (list, contact) index per active contact and list reads the pair's
    # subscription, if any (a scalar subquery: always a probe, never a pass over the whole
    # subscription table, which a chunked import would pay once per slice). Pairs already settled
    # (confirmed, or left) are skipped, far cheaper than a million ON CONFLICT probes on a
    # re-import; the same pairs count the active contacts that left one of these lists (they stay
    # out of it).
    cursor.execute(
        f"""
        WITH pairs AS MATERIALIZED (
            SELECT m.id AS contact_id, l.id AS list_id,
                   (SELECT sub.status FROM contacts_subscription sub
                     WHERE sub.mailing_list_id = l.id AND sub.contact_id = m.id) AS current
              FROM {matched} m CROSS JOIN unnest(%s::bigint[]) AS l(id)
             WHERE m.status = %s),
        subscribed AS (
            INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, source,
                created_at, confirmed_at, updated_at)
            SELECT contact_id, list_id, %s, 'import', now(), now(), now()
              FROM pairs WHERE current IS NULL OR current = %s
            ON CONFLICT (mailing_list_id, contact_id) DO UPDATE
               SET status = EXCLUDED.status, confirmed_at = now(), updated_at = now()
             WHERE contacts_subscription.status = %s)
        SELECT count(DISTINCT contact_id) FILTER (WHERE current = %s) + ({inactive}) FROM pairs
        """,  # noqa: S608
        [
            list_ids,
            ContactStatus.ACTIVE,
            SubscriptionStatus.CONFIRMED,
            SubscriptionStatus.UNCONFIRMED,
            SubscriptionStatus.UNCONFIRMED,
            SubscriptionStatus.UNSUBSCRIBED,
            ContactStatus.ACTIVE,
        ],
    )
    result.protected = cursor.fetchone()[0]


def _merge_on_conflict(
    stage: str, mode: str, list_ids: list[int], label: str, result: ImportResult, tmp: str
) -> None:
    status = {
        ImportMode.UPSERT: ContactStatus.ACTIVE,
        ImportMode.ADD: ContactStatus.ACTIVE,
        ImportMode.UNSUBSCRIBE: ContactStatus.UNSUBSCRIBED,
        ImportMode.BLOCKLIST: ContactStatus.BLOCKLISTED,
    }[mode]
    own = list(STANDARD_TARGETS)
    insert = f"""
        INSERT INTO contacts_contact AS c (email, {", ".join(own)}, attributes, status, consent_at,
            consent_source, consent_detail, created_at, updated_at, bounce_count, soft_bounce_count)
        SELECT s.email, {", ".join(f"s.{n}" for n in own)}, s.attrs, %s, CASE WHEN %s THEN now() END,
               'import', %s, now(), now(), 0, 0
          FROM {stage} s
    """  # noqa: S608
    params: list[Any] = [status, status == ContactStatus.ACTIVE, label[:300]]
    if mode == ImportMode.UPSERT:
        # An empty cell keeps what the contact has; a row that changes nothing is not written.
        sets = "".join(f"{n} = CASE WHEN EXCLUDED.{n} <> '' THEN EXCLUDED.{n} ELSE c.{n} END, " for n in own)
        changed = "".join(f"(EXCLUDED.{n} <> '' AND EXCLUDED.{n} <> c.{n}) OR " for n in own)
        conflict = f"""
        ON CONFLICT ((lower(email))) DO UPDATE SET
            {sets}attributes = c.attributes || EXCLUDED.attributes, updated_at = now()
        WHERE {changed}NOT (c.attributes @> EXCLUDED.attributes)
        """
    elif mode == ImportMode.ADD:
        conflict = "ON CONFLICT ((lower(email))) DO NOTHING"
    elif mode == ImportMode.UNSUBSCRIBE and list_ids:
        conflict = "ON CONFLICT ((lower(email))) DO NOTHING"
    else:
        weaker = (
            [ContactStatus.ACTIVE]
            if mode == ImportMode.UNSUBSCRIBE
            else [s for s in ContactStatus.values if s != ContactStatus.BLOCKLISTED]
        )
        conflict = "ON CONFLICT ((lower(email))) DO UPDATE SET status = EXCLUDED.status, updated_at = now() WHERE c.status = ANY(%s)"
        params.append(weaker)
    subscribe = mode in (ImportMode.UPSERT, ImportMode.ADD) and bool(list_ids)
    subscribe_sql = """
        INSERT INTO contacts_subscription (contact_id, mailing_list_id, status, source,
            created_at, confirmed_at, updated_at)
        SELECT {ids}, l.id, %s, 'import', now(), now(), now()
          FROM {source} CROSS JOIN unnest(%s::bigint[]) AS l(id)
         WHERE {status} = %s
        ON CONFLICT (mailing_list_id, contact_id) DO UPDATE
           SET status = EXCLUDED.status, confirmed_at = now(), updated_at = now()
         WHERE contacts_subscription.status = %s
    """
    subscribe_params = [
        SubscriptionStatus.CONFIRMED,
        list_ids,
        ContactStatus.ACTIVE,
        SubscriptionStatus.UNCONFIRMED,
    ]
    with connection.cursor() as cursor:
        # Contacts created or changed subscribe in the same statement, straight from RETURNING:
        # no second pass over the staged rows for them.
        also = ""
        if subscribe:
            also = (
                ", subscribed AS ("
                + subscribe_sql.format(ids="m.id", source="merged m", status="m.status")
                + ")"
            )
            params.extend(subscribe_params)
        counted = "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
        cursor.execute(
            f"WITH merged AS ({insert} {conflict} RETURNING id, status, (xmax = 0) AS inserted){also} {counted}",
            params,
        )
        result.created, result.updated = cursor.fetchone()
        staged = result.rows - result.invalid - result.duplicates
        result.unchanged = staged - result.created - result.updated

        join = f"FROM {stage} s JOIN contacts_contact c ON lower(c.email) = s.email_lower"  # noqa: S608
        if mode in (ImportMode.UPSERT, ImportMode.ADD):
            if result.unchanged == 0 and result.updated == 0:
                return  # every address was new: nobody to protect, every subscription made above
            # One pass matches the file to its contacts; the counts and subscriptions reuse it.
            matched = f"{tmp}_conflicting"
            cursor.execute(f"DROP TABLE IF EXISTS {matched}")  # a slice before may have come this way
            cursor.execute(
                f"CREATE TEMPORARY TABLE {matched} ON COMMIT DROP AS SELECT c.id, c.status {join}"  # noqa: S608
            )
            cursor.execute(f"ANALYZE {matched}")
            _settle_matched(cursor, matched, list_ids if subscribe else [], result)
        else:
            lists_sql, lists_params = (
                ("AND sub.mailing_list_id = ANY(%s)", [list_ids]) if list_ids else ("", [])
            )
            cursor.execute(
                f"""
                UPDATE contacts_subscription sub SET status = %s, unsubscribed_at = now(), updated_at = now()
                  {join}
                 WHERE sub.contact_id = c.id AND sub.status <> %s {lists_sql}
                """,  # noqa: S608
                [SubscriptionStatus.UNSUBSCRIBED, SubscriptionStatus.UNSUBSCRIBED, *lists_params],
            )
            if list_ids and mode == ImportMode.UNSUBSCRIBE:
                result.updated = cursor.rowcount
                result.unchanged = staged - result.created - result.updated


def run_import(
    path: Path,
    *,
    mode: str = ImportMode.UPSERT,
    list_ids: list[int] | None = None,
    mapping: dict[str, str] | None = None,
    report_path: Path | None = None,
    label: str = "import",
    progress: Progress | None = None,
    drop_flagged: bool = False,
) -> ImportResult:
    """Import `path`; ImportFileError (nothing stored) when the file as a whole is unusable.

    `drop_flagged`: role and disposable addresses go to the bad rows (default: kept, and flagged
    on the contact's page)."""
    if mode not in ImportMode.values:
        raise ImportFileError(f"mode must be one of {', '.join(ImportMode.values)}")
    fmt = sniff(path)
    if mode in (ImportMode.UPSERT, ImportMode.ADD):
        total = path.stat().st_size

        def stage_and_merge(stage, email_index, columns, report, result) -> None:
            def staged(counter: _Counter) -> Iterator[tuple]:
                # The reading process reports how far it read through the slices it hands over.
                def read_to(_stage: str, done: int, _total: int) -> None:
                    counter.done = done

                return _file_rows(
                    path, fmt, email_index, columns, report, counter, read_to, drop_flagged=drop_flagged
                )

            _merge_in_chunks(staged, stage, mode, label, result, report, progress, total)

        return _run(
            fmt.headers, None, mode, list_ids, mapping, report_path, label, progress, None, stage_and_merge
        )

    def stage_rows(stage, email_index, columns, report) -> tuple[int, int]:
        return _parse_into_stage(
            path, fmt, email_index, columns, stage, report, progress, drop_flagged=drop_flagged
        )

    return _run(fmt.headers, stage_rows, mode, list_ids, mapping, report_path, label, progress)


# Rows per slice of a chunked import: small enough that the first slice's reading and the last
# one's merge (the parts that cannot overlap) are short (~1 s each), large enough that each
# slice's round trips (5-7; on a loaded machine each can wait tens of ms for both processes to
# be scheduled) stay a small share. Two slices at most are held in memory.
CHUNK_ROWS = 100_000

_COPY_SPECIAL = re.compile(r"[\\\t\n\r]").search


def _copy_text(value: str) -> str:
    """A value as COPY's text format writes it (NUL never gets here: such rows are refused)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_line(row: tuple) -> str:
    """One stage row (`_STAGE_COLUMNS`) as a line of COPY text, as psycopg's write_row makes it:
    made here so that the reading process does it, not the merging one."""
    *values, raw = row
    line = "\x00".join([str(values[0]), *values[1:]])
    if _COPY_SPECIAL(line):
        line = "\t".join(_copy_text(v) for v in [str(values[0]), *values[1:]])
    else:
        line = line.replace("\x00", "\t")
    if raw is None:
        return line + "\t\\N\n"
    cells = ",".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in raw)
    return line + "\t" + _copy_text("{" + cells + "}") + "\n"


def _slice_rows(counter: _Counter, total: int) -> int:
    """How many rows the next slice holds. The first slice and those of about the file's last
    CHUNK_ROWS rows are a quarter of the others: nothing merges until the first slice is read,
    and nothing reads while the last one merges, so those two are what the wall time adds to the
    slower side's work (~1 s each at 100,000 rows); in between, large slices keep the round trips
    few. The rows left are estimated from the bytes and rows read at the last progress report
    (every 20,000 rows)."""
    small = max(1, CHUNK_ROWS // 4)
    if not counter.done or not counter.rows:
        return small
    rows_left = (total - counter.done) * counter.rows / counter.done
    return small if rows_left < CHUNK_ROWS + small else CHUNK_ROWS


def _read_slices(
    staged: Callable[[_Counter], Iterator[tuple]], out: IO[bytes], report: _Report, total: int
) -> None:
    """The reading process: the file's staged rows (`total` bytes) as COPY text, a slice at a
    time (`_slice_rows`), down `out` (pickled: ("slice", bytes, rows merged with it, bytes of the
    file read), then ("end", rows read, rows flagged, bad rows) or ("file_error", message) or
    ("error", traceback))."""
    counter = _Counter()
    try:
        lines: list[str] = []
        first_rows = 0
        limit = _slice_rows(counter, total)
        for row in staged(counter):
            lines.append(_copy_line(row))
            if row[-1] is None:
                first_rows += 1
            if len(lines) >= limit:
                pickle.dump(("slice", "".join(lines).encode(), first_rows, counter.done), out, protocol=5)
                # At once: the message's last bytes would otherwise wait in the buffer for the
                # next slice, and the merging side with them.
                out.flush()
                lines, first_rows = [], 0
                limit = _slice_rows(counter, total)
        if lines:
            pickle.dump(("slice", "".join(lines).encode(), first_rows, counter.done), out, protocol=5)
        report.close()
        pickle.dump(("end", counter.rows, counter.flagged, report.count), out)
    except ImportFileError as exc:
        pickle.dump(("file_error", str(exc)), out)
    except BrokenPipeError:
        return  # the merging process gave up
    except BaseException:
        pickle.dump(("error", traceback.format_exc()), out)
    out.flush()


def _merge_in_chunks(
    staged: Callable[[_Counter], Iterator[tuple]],
    stage: str,
    mode: str,
    label: str,
    result: ImportResult,
    report: _Report,
    progress: Progress | None,
    total: int,
) -> None:
    """Read the file in a process of its own while the database merges what was read before it.

    The file is read (and checked) in slices of CHUNK_ROWS staged rows by a forked process, which
    also writes the bad rows' report and turns the rows into COPY text; each slice is COPYed into
    the stage (emptied each time) and merged at once, on this process's connection, in the
    import's one transaction, while the reader goes on with the next slice. The wall time is then
    about the slower of Python and PostgreSQL, not their sum. A process, not a thread: the two
    sides share no GIL, which on a loaded machine kept the merging side waiting for its turn.
    Upsert and add only: the other modes stage the whole file, then merge.

    Duplicates: a row the seen-filter did not flag is the first of its address in the file (the
    filter never misses an address it saw), so it merges with its slice. Flagged rows wait: once
    the file is read, those whose address an earlier row has are the duplicates (reported as
    before), and the rest merge last. The first row of each address still wins.
    """
    keys, flagged = f"{stage}_keys", f"{stage}_flagged"
    with connection.cursor() as cursor:
        # Into an empty table (a first import), no row of the file can match a contact: the rows
        # merged are each the first of their address, so not even the import's own contacts.
        # Then no slice looks for contacts (~1.2 µs a row).
        cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM contacts_contact)")
        all_new = cursor.fetchone()[0]
        cursor.execute(f"CREATE TEMPORARY TABLE {keys} (row_no bigint, email_lower text) ON COMMIT DROP")
        cursor.execute(f"CREATE TEMPORARY TABLE {flagged} (LIKE {stage}) ON COMMIT DROP")
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader: no database, and none of the parent's objects cleaned up (os._exit)
        os.close(readable)
        try:
            with os.fdopen(writable, "wb", buffering=1 << 20) as out:
                _read_slices(staged, out, report, total)
        finally:
            os._exit(0)
    os.close(writable)
    end = None
    try:
        with os.fdopen(readable, "rb", buffering=1 << 20) as inp:
            while True:
                try:
                    message = pickle.load(inp)
                except EOFError:
                    raise RuntimeError("the import's reading process ended without a word") from None
                if message[0] == "file_error":
                    raise ImportFileError(message[1])
                if message[0] == "error":
                    raise RuntimeError(f"the import's reading process failed:\n{message[1]}")
                if message[0] == "end":
                    end = message
                    break
                _, data, first_rows, done = message
                # `stage` holds one slice at a time; `keys` every row's address (for the
                # duplicate check at the end) and `flagged` the flagged rows.
                with connection.cursor() as cursor:
                    with cursor.copy(f"COPY {stage} {_STAGE_COLUMNS} FROM STDIN") as copy:
                        copy.write(data)
                del data, message
                if progress:
                    progress("reading", done, total)
                if first_rows:
                    part = ImportResult(rows=first_rows)
                    first = f"(SELECT * FROM {stage} WHERE raw IS NULL)"  # noqa: S608
                    _merge(first, mode, result.lists, label, part, stage, all_new=all_new)
                    _add_counts(result, part)
                with connection.cursor() as cursor:
                    _execute_all(
                        cursor,
                        f"INSERT INTO {keys} SELECT row_no, email_lower FROM {stage}; "  # noqa: S608
                        f"INSERT INTO {flagged} SELECT * FROM {stage} WHERE raw IS NOT NULL; "
                        f"TRUNCATE {stage}",
                    )
    finally:
        if end is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    _, result.rows, flagged_rows, report.count = end
    report.continued = report.count > 0
    report.flagged = flagged_rows
    if flagged_rows:
        duplicates = f"{stage}_duplicates"
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {flagged} (row_no, email_lower)")
            result.duplicates = _find_duplicates(cursor, flagged, keys, duplicates)
            if result.duplicates:
                cursor.execute(f"DELETE FROM {flagged} WHERE ctid = ANY(ARRAY(SELECT tid FROM {duplicates}))")  # noqa: S608
        if result.duplicates:
            _report_duplicates(duplicates, report)
        last_rows = flagged_rows - result.duplicates
        if last_rows:
            part = ImportResult(rows=last_rows)
            _merge(flagged, mode, result.lists, label, part, all_new=all_new)
            _add_counts(result, part)


def _add_counts(result: ImportResult, part: ImportResult) -> None:
    result.created += part.created
    result.updated += part.updated
    result.unchanged += part.unchanged
    result.protected += part.protected


def _stage_table(stage: str) -> str:
    return (
        f"CREATE TEMPORARY TABLE {stage} (row_no bigint NOT NULL, email text NOT NULL, "
        + "email_lower text NOT NULL, "
        + "".join(f"{n} text NOT NULL, " for n in STANDARD_TARGETS)
        + "attrs jsonb NOT NULL, raw text[]) ON COMMIT DROP"
    )


def run_import_rows(
    headers: list[str],
    records: Iterable[list[str]],
    *,
    mode: str = ImportMode.UPSERT,
    list_ids: list[int] | None = None,
    mapping: dict[str, str] | None = None,
    report_path: Path | None = None,
    label: str = "import",
    size_hint: int = 0,
    bad_rows: list | None = None,
) -> ImportResult:
    """`run_import` for rows already in memory (the API's bulk upsert): `records` are the cells
    of each row under `headers` (row 2 is the first, as in a file), COPYed straight from the
    iterator, no file in between. `size_hint` (about the rows' bytes) sizes the duplicate filter;
    `bad_rows`, when given, receives (row, cells, reason) of each refused row."""
    if mode not in ImportMode.values:
        raise ImportFileError(f"mode must be one of {', '.join(ImportMode.values)}")

    def stage_rows(stage, email_index, columns, report) -> tuple[int, int]:
        rows = _stage_records(
            iter(records), len(headers), email_index, columns, stage, report, None,
            total=size_hint, done=lambda: 0,
        )  # fmt: skip
        return rows, _drop_duplicates(stage, report, analyze=mode not in (ImportMode.UPSERT, ImportMode.ADD))

    return _run(headers, stage_rows, mode, list_ids, mapping, report_path, label, None, bad_rows)


def _run(
    headers: list[str],
    stage_rows: Callable[[str, int, list[_Column], _Report], tuple[int, int]] | None,
    mode: str,
    list_ids: list[int] | None,
    mapping: dict[str, str] | None,
    report_path: Path | None,
    label: str,
    progress: Progress | None,
    bad_rows: list | None = None,
    stage_and_merge: Callable[[str, int, list[_Column], _Report, ImportResult], None] | None = None,
) -> ImportResult:
    """Stage with `stage_rows` then merge, or both at once with `stage_and_merge` (chunked)."""
    list_ids = sorted({int(i) for i in list_ids or []})
    mapping = mapping or suggest_mapping(headers)
    email_index, columns, new_fields = _resolve_columns(headers, mapping)
    result = ImportResult(lists=list_ids)
    report = _Report(report_path, headers, bad_rows)
    stage = f"contacts_import_stage_{secrets.token_hex(6)}"
    try:
        # One transaction from staging to merge: a failure anywhere stores nothing.
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Room for the duplicate check and the merge's joins and sorts in memory (a
                # million staged rows against a million contacts: ~250 MB of hash), this
                # transaction only.
                cursor.execute("SET LOCAL work_mem = '256MB'")
                cursor.execute(_stage_table(stage))
            for name, header in new_fields:
                CustomField.objects.get_or_create(
                    name=name, defaults={"label": header, "type": FieldType.TEXT}
                )
            if stage_and_merge is not None:
                stage_and_merge(stage, email_index, columns, report, result)
                result.invalid = report.count - result.duplicates
            else:
                assert stage_rows is not None
                result.rows, result.duplicates = stage_rows(stage, email_index, columns, report)
                result.invalid = report.count - result.duplicates
                if progress:
                    progress("merging", 1, 3)
                _merge(stage, mode, list_ids, label, result)
        if progress:
            progress("done", 3, 3)
    finally:
        report.close()
    if report.count and report_path is not None:
        result.report_path = str(report_path)
    return result
