"""CSV table codec for the control plane's site and device importers.

Pure (stdlib only, no I/O). The tokenizer is hand-written rather than built on
the csv module so that size caps and error messages are ours; lines without a
quote character take a ``str.split`` fast path and only quoted records go
through the character-level state machine.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# PDMS-E guide, CSV Format: comma, semicolon or TAB, exactly one kind per file.
SEPARATORS = (",", ";", "\t")

# 64 KiB per field, counted in characters of the decoded text.
_MAX_FIELD_CHARS = 64 * 1024
_MAX_COLUMNS = 1000
_PAD = " \t"
_ANY_SEPARATOR = "".join(SEPARATORS)
_ANY_SEPARATOR_RE = re.compile("[,;\t]")
# Lines end with CRLF, LF or a lone CR; the capture group keeps the terminator so
# quoted fields can carry the exact line break they were written with.
_LINE_END = re.compile(r"(\r\n|\r|\n)")
# RFC 4180: fields containing a separator, quote or line break are quoted. Any of the three
# separators counts, so header detection never sees a stray one; leading and trailing
# whitespace (and a leading BOM) is quoted too because the reader strips it.
_NEEDS_QUOTES = re.compile(r'[",;\t\r\n]|\A[\s\ufeff]|\s\Z')
_QUOTE_ADVICE = 'enclose the whole field in double quotes and double every quote inside it ("")'


class CsvError(ValueError):
    """The whole file (or table to write) is unusable; ``row`` is the record at fault, if any."""

    def __init__(self, message: str, row: int | None = None, code: str = "invalid_csv") -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.code = code


@dataclass(frozen=True, slots=True)
class CsvRow:
    """A well-formed data row; ``row`` counts non-blank records with the header as 1."""

    row: int
    line: int
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A data row that could not be read; the rest of the file still is."""

    row: int
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A parsed file: importers act on ``rows`` and report ``problems`` back to the user."""

    separator: str
    headers: tuple[str, ...]
    rows: tuple[CsvRow, ...]
    problems: tuple[RowProblem, ...]


@dataclass(frozen=True, slots=True)
class _Fault:
    """A quoting error inside one record, found by the state machine."""

    column: int
    text: str


@dataclass(frozen=True, slots=True)
class _Record:
    """One tokenized record: its raw fields, the line after it and the separators it used."""

    fields: list[str]
    next_line: int
    fault: _Fault | None
    used: frozenset[str]


def _show(separator: str) -> str:
    """Name a separator the way users see it: a tab is invisible in a message."""
    return "TAB" if separator == "\t" else repr(separator)


def _show_list(separators: Iterable[str], conjunction: str = "and") -> str:
    names = [_show(s) for s in separators]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + f" {conjunction} " + names[-1]


def _snippet(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:24] + "…")


def _scan(lines: list[str], ends: list[str], start: int, separators: str, stop: int) -> _Record:
    """Tokenize the record starting at line ``start`` (RFC 4180 quoting).

    A field is quoted when its first non-blank character is ``"``; ``""`` inside it is a
    literal quote and line breaks inside it are kept as written. The record may not run
    past line ``stop``. After a fault the record ends with its current physical line so the
    caller resyncs there.
    """
    fields: list[str] = []
    used: set[str] = set()
    single = len(separators) == 1
    pad = _PAD.replace("\t", "") if "\t" in separators else _PAD
    i = start
    s = lines[i]
    n = len(s)
    p = 0
    while True:
        q = p
        while q < n and s[q] in pad:
            q += 1
        if q < n and s[q] == '"':
            opened = i
            parts: list[str] = []
            p = q + 1
            while True:
                k = s.find('"', p)
                if k < 0:
                    parts.append(s[p:])
                    if i + 1 >= stop:
                        text = (
                            f"the quote that opens this field on line {opened + 1} is never "
                            "closed, so the rest of the file was read into this one field; "
                            'close the quote, and double every quote inside the field ("")'
                        )
                        return _Record(fields, stop, _Fault(len(fields), text), frozenset(used))
                    parts.append(ends[i])
                    i += 1
                    s = lines[i]
                    n = len(s)
                    p = 0
                elif k + 1 < n and s[k + 1] == '"':
                    parts.append(s[p : k + 1])
                    p = k + 2
                else:
                    parts.append(s[p:k])
                    p = k + 1
                    break
            fields.append("".join(parts))
            while p < n and s[p] in pad:
                p += 1
            if p >= n:
                return _Record(fields, i + 1, None, frozenset(used))
            if s[p] not in separators:
                text = (
                    f"text after the closing quote: {_snippet(s[p:])}; a quoted field ends at "
                    f"the first quote that is not doubled — {_QUOTE_ADVICE}"
                )
                return _Record(fields, i + 1, _Fault(len(fields) - 1, text), frozenset(used))
            used.add(s[p])
            p += 1
        else:
            # Searching onward from q (never from the line start) keeps long lines linear.
            if single:
                k = s.find(separators, q)
            else:
                found = _ANY_SEPARATOR_RE.search(s, q)
                k = -1 if found is None else found.start()
            if k < 0:
                fields.append(s[q:].strip(_PAD))
                return _Record(fields, i + 1, None, frozenset(used))
            fields.append(s[q:k].strip(_PAD))
            used.add(s[k])
            p = k + 1


def _decode(data: bytes | str, max_bytes: int) -> str:
    """Check the size cap and return the text without its BOM (UTF-8 only)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CsvError(
            f"the file is {len(raw)} bytes; the limit is {max_bytes} bytes", code="too_large"
        )
    if isinstance(data, str):
        text = data.removeprefix("\ufeff")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvError('the file is UTF-16; save it as UTF-8 ("CSV UTF-8" in Excel)')
    else:
        skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        try:
            text = data[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = skip + exc.start
            line = len(_LINE_END.findall(data[skip:offset].decode("utf-8"))) + 1
            raise CsvError(
                f"the file is not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset} "
                f'(line {line}); save it as UTF-8 ("CSV UTF-8" in Excel)'
            ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = len(_LINE_END.findall(text, 0, nul)) + 1
        raise CsvError(
            f"line {line} contains a NUL character, so this is not a text file (UTF-16?); "
            'save it as UTF-8 ("CSV UTF-8" in Excel)'
        )
    return text


def _header_names(fields: list[str]) -> tuple[str, ...]:
    """Validate the header (PDMS-E guide, CSV Format): only trailing columns may be unnamed."""
    names = [f.strip(_PAD) for f in fields]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise CsvError("the header row has no column names", row=1)
    if len(names) > _MAX_COLUMNS:
        raise CsvError(f"the header has {len(names)} columns; the limit is {_MAX_COLUMNS}", row=1)
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if not name:
            raise CsvError(
                f"column {k + 1} of the header has no name; name every column "
                "(only columns at the end of the header may be empty)",
                row=1,
            )
        if len(name) > _MAX_FIELD_CHARS:
            raise CsvError(
                f"the name of header column {k + 1} is {len(name)} characters; "
                f"the limit is {_MAX_FIELD_CHARS}",
                row=1,
            )
        first = seen.setdefault(name.casefold(), k)
        if first != k:
            raise CsvError(
                f"columns {first + 1} ({names[first]!r}) and {k + 1} ({name!r}) have the same "
                "header name (header names are not case-sensitive); rename or remove one",
                row=1,
            )
    return tuple(names)


def _pick_separator(used: frozenset[str], given: str | None) -> str:
    """The caller's separator, else the one kind the header uses (PDMS-E guide, CSV Format)."""
    if given is not None:
        return given
    if len(used) > 1:
        found = _show_list(c for c in SEPARATORS if c in used)
        raise CsvError(
            f"mixed separators in the header: found {found} — use exactly one kind per file",
            row=1,
        )
    return next(iter(used), ",")


def _count_without_trailing_empties(fields: list[str]) -> int:
    last = len(fields)
    while last and not fields[last - 1]:
        last -= 1
    return last


class _Reader:
    """Turns the lines of a decoded file into rows and problems."""

    def __init__(self, text: str, separator: str | None) -> None:
        parts = _LINE_END.split(text)
        self.lines = parts[0::2]
        self.ends = [*parts[1::2], ""]
        self.total = len(self.lines)
        self.separator = separator or ","
        self.headers: tuple[str, ...] = ()
        self.width = 0
        self.next_line = 0
        self.rows: list[CsvRow] = []
        self.problems: list[RowProblem] = []
        self._read_header(separator)

    def _read_header(self, separator: str | None) -> None:
        """Find the first non-blank record and take the separator from it."""
        candidates = separator or _ANY_SEPARATOR
        i = 0
        while i < self.total and '"' not in self.lines[i]:
            if self.lines[i].strip(_PAD + candidates):
                break
            i += 1
        if i >= self.total:
            raise CsvError("the file is empty; it needs a header row naming the columns")
        s = self.lines[i]
        if '"' in s:
            record = _scan(self.lines, self.ends, i, candidates, self.total)
            if record.fault is not None:
                raise CsvError(
                    f"header (row 1), column {record.fault.column + 1}: {record.fault.text}",
                    row=1,
                )
            # With at most one separator kind in use, this scan split the record exactly
            # where a scan with the chosen separator would.
            self.separator = _pick_separator(record.used, separator)
            fields, self.next_line = record.fields, record.next_line
        else:
            self.separator = _pick_separator(frozenset(c for c in candidates if c in s), separator)
            fields, self.next_line = s.split(self.separator), i + 1
        self.width = len(fields)
        self.headers = _header_names(fields)

    def read(self, max_rows: int) -> CsvTable:
        sep = self.separator
        blank = _PAD + sep
        lines = self.lines
        count = 0
        i = self.next_line
        while i < self.total:
            s = lines[i]
            quoted = '"' in s
            if not quoted and not s.strip(blank):
                i += 1
                continue
            count += 1
            if count > max_rows:
                raise CsvError(
                    f"the file has more than {max_rows} data rows; the limit is {max_rows} — "
                    "split it into smaller files",
                    row=count + 1,
                    code="too_many_rows",
                )
            row = count + 1
            start = i
            if quoted:
                record = _scan(lines, self.ends, i, sep, self.total)
                fields, i = record.fields, record.next_line
                if record.fault is not None:
                    where = self._column(record.fault.column)
                    self._problem(row, start, f"row {row}, {where}: {record.fault.text}")
                    continue
            else:
                fields = [f.strip(_PAD) for f in s.split(sep)]
                i += 1
            self._add(row, start, i, fields)
        return CsvTable(sep, self.headers, tuple(self.rows), tuple(self.problems))

    def _column(self, k: int) -> str:
        if k < len(self.headers):
            return f"column {k + 1} ({self.headers[k]})"
        return f"column {k + 1}"

    def _problem(self, row: int, start: int, message: str) -> None:
        self.problems.append(RowProblem(row, start + 1, message))

    def _add(self, row: int, start: int, stop: int, fields: list[str]) -> None:
        """Fit a record's fields to the header, or record why they do not fit."""
        if max(map(len, fields)) > _MAX_FIELD_CHARS:
            k = next(k for k, value in enumerate(fields) if len(value) > _MAX_FIELD_CHARS)
            self._problem(
                row,
                start,
                f"row {row}, {self._column(k)}: the value is {len(fields[k])} characters; "
                f"the limit is {_MAX_FIELD_CHARS} (64 KiB)",
            )
            return
        width = len(self.headers)
        filled = _count_without_trailing_empties(fields)
        if filled > self.width or (filled == 1 and width > 1):
            other = self._other_separator(start, stop)
            if other is not None:
                self._problem(
                    row,
                    start,
                    f"row {row} uses {_show(other)} but this file's separator is "
                    f"{_show(self.separator)} (one kind of separator per file)",
                )
                return
        if filled > self.width:
            self._problem(
                row,
                start,
                f"row {row} has {filled} fields but the header has {width}: quote fields that "
                f'contain {_show(self.separator)} and double the quotes inside them ("")',
            )
            return
        for k in range(width, filled):
            if fields[k]:
                self._problem(
                    row,
                    start,
                    f"row {row}: value in column {k + 1} has no header; name that column in "
                    "the header or remove the value",
                )
                return
        if len(fields) < width:
            # PDMS-E guide, CSV Format: Excel drops trailing empty cells, so pad them back.
            fields.extend([""] * (width - len(fields)))
        self.rows.append(CsvRow(row, start + 1, tuple(fields[:width])))

    def _other_separator(self, start: int, stop: int) -> str | None:
        """The other separator kind that splits this record into exactly the header's columns."""
        width = len(self.headers)
        for other in SEPARATORS:
            if other == self.separator:
                continue
            if stop == start + 1 and '"' not in self.lines[start]:
                if other not in self.lines[start]:
                    continue
                fields = self.lines[start].split(other)
            else:
                record = _scan(self.lines, self.ends, start, other, stop)
                if record.fault is not None or other not in record.used:
                    continue
                fields = record.fields
            if _count_without_trailing_empties([f.strip(_PAD) for f in fields]) == width:
                return other
        return None


def read_table(
    data: bytes | str, *, max_rows: int, max_bytes: int, separator: str | None = None
) -> CsvTable:
    """Parse a CSV file; only whole-file problems raise, bad rows land in ``problems``.

    ``separator`` is detected from the header when not given. Every failure is a
    ``CsvError``, whatever the input.
    """
    if separator is not None and separator not in SEPARATORS:
        raise CsvError(
            f"separator {separator!r} is not supported; use {_show_list(SEPARATORS, 'or')}"
        )
    return _Reader(_decode(data, max_bytes), separator).read(max_rows)


def _quote(value: str) -> str:
    if _NEEDS_QUOTES.search(value) is None:
        return value
    return '"' + value.replace('"', '""') + '"'


def _check_values(values: Sequence[str], row: int) -> None:
    for k, value in enumerate(values):
        if "\x00" in value:
            raise CsvError(f"row {row}, column {k + 1} contains a NUL character", row=row)
        if len(value) > _MAX_FIELD_CHARS:
            raise CsvError(
                f"row {row}, column {k + 1} is {len(value)} characters; "
                f"the limit is {_MAX_FIELD_CHARS}",
                row=row,
            )


def write_table(headers: Sequence[str], rows: Iterable[Sequence[str]], separator: str = ",") -> str:
    """Render a table that ``read_table`` reads back exactly (RFC 4180 quoting, LF line ends).

    Raises ``CsvError`` for anything that would not read back: NUL characters, ragged
    rows, over-long fields, and header names that are empty, padded or duplicated.
    """
    if separator not in SEPARATORS:
        raise CsvError(
            f"separator {separator!r} is not supported; use {_show_list(SEPARATORS, 'or')}"
        )
    names = list(headers)
    if not names:
        raise CsvError("a table needs at least one column")
    if len(names) > _MAX_COLUMNS:
        raise CsvError(f"the table has {len(names)} columns; the limit is {_MAX_COLUMNS}")
    _check_values(names, 1)
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if not name.strip(_PAD) or name != name.strip(_PAD):
            raise CsvError(
                f"header column {k + 1} ({name!r}) must be non-empty without spaces around it",
                row=1,
            )
        first = seen.setdefault(name.casefold(), k)
        if first != k:
            raise CsvError(f"header columns {first + 1} and {k + 1} are both named {name!r}", row=1)
    out = [separator.join(_quote(name) for name in names)]
    for row, row_values in enumerate(rows, start=2):
        values = list(row_values)
        if len(values) != len(names):
            raise CsvError(
                f"row {row} has {len(values)} values but there are {len(names)} headers",
                row=row,
            )
        _check_values(values, row)
        if any(values):
            out.append(separator.join(_quote(value) for value in values))
        else:
            # An all-empty row would read back as a skipped blank line; a quoted empty
            # first field keeps it.
            out.append('""' + separator * (len(values) - 1))
    return "\n".join(out) + "\n"
