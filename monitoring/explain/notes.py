"""Notes on the samples of a batch: what a person found when explaining its worst rows.

A note is a frozen `Note` written as a Markdown file: a table of its structured fields
(every value JSON-encoded, with `|` written `\u007c`), a blank line, then the free text. A
table, because MLflow's Markdown viewer knows no front matter (a `---` block renders as
one large heading); files written with that earlier front block still read.

    | field | value |
    |---|---|
    | note_id | "1a2b3c4d-1-5f0e9a3c" |
    | run_id | "1a2b3c4d..." |
    | model_name | "churn" |
    | model_version | "none" |
    | batch_id | "b1" |
    | sample_ids | ["3", "17"] |
    | verdict | "anomaly-ignore" |
    | author | "alice" |
    | created | "2026-11-27T17:29:28.123456Z" |

    The text.

`Note.from_markdown(note.to_markdown()) == note` for every note. This module is pure: the
tracking layer (`monitoring.track.notes`) does the reading and writing.

A note id is `<run id prefix>-<n>-<random suffix>`: n counts the run's notes as its writer
saw them (for reading order), the suffix makes the id unique when two writers add a note
to one run at the same moment and both count the same n. Ids written before the suffix
existed (`<prefix>-<n>`) still parse. A note's text holds at most `MAX_NOTE_TEXT_BYTES`.

Errors: an unknown verdict is a `ConfigError` (listing `VERDICTS`); everything else wrong
with a note (empty text, a run that is not a batch run, a sample id that is not in the
batch, an unknown note id, an unparsable note file) is a `NoteError`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from monitoring.errors import ConfigError, NoteError

__all__ = [
    "IGNORE_VERDICT",
    "MAX_NOTE_TEXT_BYTES",
    "VERDICTS",
    "Note",
    "RowNumbers",
    "check_sample_ids",
    "check_text",
    "check_verdict",
    "ignored_samples",
    "next_note_id",
    "utc_now",
]

IGNORE_VERDICT = "anomaly-ignore"
"""Samples noted with this verdict are excluded from performance when re-evaluated."""

VERDICTS = (
    IGNORE_VERDICT,
    "anomaly-keep",
    "data-quality",
    "label-error",
    "model-error",
    "drift",
    "other",
)
"""Every verdict a note may carry."""

NOTE_ID_RUN_PREFIX = 8
"""A note id is the first NOTE_ID_RUN_PREFIX characters of its run id, `-`, a count, `-`
and NOTE_ID_SUFFIX_BYTES random bytes in hex."""
NOTE_ID_SUFFIX_BYTES = 4
"""Random bytes that end a note id: two writers that count the same n on one run at the
same moment get one id in 2**32 cases, so each keeps its note."""

MAX_NOTE_TEXT_BYTES = 64 * 1024
"""The most a note's text may hold, in bytes of UTF-8: a note is read whole, and copied
into tags and listings. Longer material belongs in an artifact the note points to."""

FRONT = "---"
"""The fences of the fields block that notes written before the table had."""
TABLE_HEAD, TABLE_RULE = "| field | value |", "|---|---|"


def _table_row(line: str) -> tuple[str, str]:
    """(name, JSON value) of a `| name | value |` row; ("", "") when it is not one."""
    if not (line.startswith("| ") and line.endswith(" |")):
        return "", ""
    name, _, value = line[2:-2].partition(" | ")
    return name, value
_NOTE_ID = re.compile(
    r"^(?P<prefix>[0-9A-Za-z]+)-(?P<n>[1-9][0-9]*)"
    rf"(?:-(?P<suffix>[0-9a-f]{{{2 * NOTE_ID_SUFFIX_BYTES}}}))?$"
)


def check_verdict(verdict: str) -> str:
    """`verdict` when it is one of VERDICTS, else a ConfigError listing them."""
    if verdict not in VERDICTS:
        raise ConfigError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    return verdict


def check_text(text: str) -> str:
    """The text without surrounding blanks; an empty text, or one over
    MAX_NOTE_TEXT_BYTES, is a NoteError."""
    stripped = text.strip()
    if not stripped:
        raise NoteError("the note is empty: give a text that says what was found")
    size = len(stripped.encode("utf-8"))
    if size > MAX_NOTE_TEXT_BYTES:
        raise NoteError(
            f"the note's text is {size:,} bytes, over the limit of {MAX_NOTE_TEXT_BYTES:,} "
            "(MAX_NOTE_TEXT_BYTES): shorten it, or log the long material as an artifact "
            "and say where it is"
        )
    return stripped


def _check_field(name: str, value: str) -> str:
    if not value or value != value.strip() or "\n" in value or "\r" in value:
        raise NoteError(f"note {name} must be one non-empty line without surrounding blanks")
    return value


def clean_sample_ids(sample_ids: Iterable[str]) -> tuple[str, ...]:
    """Sample ids as strings, stripped, de-duplicated in order; commas are refused."""
    out: list[str] = []
    for raw in sample_ids:
        value = str(raw).strip()
        if not value or "," in value or "\n" in value:
            raise NoteError(f"sample id {raw!r} must be non-empty and contain no comma")
        if value not in out:
            out.append(value)
    return tuple(out)


@dataclass(frozen=True)
class RowNumbers:
    """The row numbers of a batch without an id column (0 to n - 1), as a note names them:
    decimal text without leading zeros, the way a re-evaluation matches them."""

    n: int

    def __contains__(self, value: object) -> bool:
        text = str(value)
        return text.isdecimal() and text == str(int(text)) and int(text) < self.n


def check_sample_ids(
    sample_ids: Sequence[str], available: Container[str], *, run_id: str, held: str
) -> None:
    """NoteError naming the first of `sample_ids` absent from `available` (compared as
    strings), the run, and what the run holds (`held`, in words)."""
    for value in sample_ids:
        if value not in available:
            raise NoteError(f"sample id {value!r} is not in batch run {run_id}: {held}")


def next_note_id(run_id: str, existing: Iterable[str], *, suffix: str | None = None) -> str:
    """`<run_id[:8]>-<n>-<suffix>`: n one more than the highest n among the run's
    `existing` ids, `suffix` random hex unless given."""
    numbers = [int(m["n"]) for m in map(_NOTE_ID.match, existing) if m]
    suffix = secrets.token_hex(NOTE_ID_SUFFIX_BYTES) if suffix is None else suffix
    return f"{run_id[:NOTE_ID_RUN_PREFIX]}-{max(numbers, default=0) + 1}-{suffix}"


def note_id_prefix(note_id: str) -> str:
    """The run-id prefix of `note_id`; NoteError when it is not a note id."""
    match = _NOTE_ID.match(note_id)
    if match is None:
        raise NoteError(
            f"{note_id!r} is not a note id (expected RUNPREFIX-N-SUFFIX, e.g. "
            "1a2b3c4d-1-5f0e9a3c, or RUNPREFIX-N for notes written before suffixes)"
        )
    return match["prefix"]


def note_number(note_id: str) -> int:
    match = _NOTE_ID.match(note_id)
    return int(match["n"]) if match else 0


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds and a `Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Note:
    """One note on a batch run: structured fields, then free Markdown text."""

    note_id: str
    run_id: str
    model_name: str
    model_version: str
    batch_id: str
    sample_ids: tuple[str, ...]
    verdict: str
    author: str
    created: str
    text: str

    def __post_init__(self) -> None:
        check_verdict(self.verdict)
        note_id_prefix(self.note_id)
        for name in ("run_id", "model_name", "model_version", "batch_id", "author", "created"):
            _check_field(name, getattr(self, name))
        object.__setattr__(self, "sample_ids", clean_sample_ids(self.sample_ids))
        if not self.text.strip():
            raise NoteError(f"note {self.note_id} has no text")

    @property
    def ignores_samples(self) -> bool:
        return self.verdict == IGNORE_VERDICT

    def to_dict(self) -> dict[str, object]:
        """Every field, sample ids as a list (JSON-ready)."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sample_ids"] = list(self.sample_ids)
        return out

    def to_markdown(self) -> str:
        """The fields as a Markdown table, a blank line, the text and a final newline."""
        lines = [TABLE_HEAD, TABLE_RULE]
        for name, value in self.to_dict().items():
            if name != "text":
                # JSON, with | as \u007c: no raw pipe breaks the table, and json.loads reads it
                cell = json.dumps(value, ensure_ascii=False).replace("|", "\\u007c")
                lines.append(f"| {name} | {cell} |")
        lines += ["", self.text]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_markdown(cls, markdown: str) -> Note:
        """The note written by `to_markdown` (or by its earlier `---` front block form);
        NoteError when `markdown` is not one."""
        if markdown.startswith(f"{FRONT}\n"):
            head, sep, text = markdown.partition(f"\n{FRONT}\n\n")
            rows = [line.partition(": ")[::2] for line in head.split("\n")[1:]] if sep else []
        elif markdown.startswith(f"{TABLE_HEAD}\n{TABLE_RULE}\n"):
            head, sep, text = markdown.partition("\n\n")
            rows = [_table_row(line) for line in head.split("\n")[2:]]
        else:
            sep, text, rows = "", "", []
        if not sep or not text.endswith("\n"):
            raise NoteError("not a note: expected a table of its fields, a blank line and text")
        values: dict[str, object] = {}
        for name, raw in rows:
            try:
                values[name] = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                raise NoteError(f"not a note: field {name!r} has an unreadable value") from None
        names = [f.name for f in fields(cls) if f.name != "text"]
        if sorted(values) != sorted(names) or not all(
            isinstance(values[n], list if n == "sample_ids" else str) for n in names
        ):
            raise NoteError(f"not a note: the front block must hold exactly {', '.join(names)}")
        values["sample_ids"] = tuple(values["sample_ids"])  # type: ignore[arg-type]
        return cls(text=text[:-1], **values)  # type: ignore[arg-type]


def ignored_samples(notes: Iterable[Note]) -> tuple[str, ...]:
    """Sample ids of every `anomaly-ignore` note, in note order, each once."""
    out: list[str] = []
    for note in notes:
        if note.ignores_samples:
            out += [s for s in note.sample_ids if s not in out]
    return tuple(out)


def sort_key(note: Note) -> tuple[str, str, int, str]:
    """Creation time, then run, note number (10 after 9) and id."""
    return note.created, note.run_id, note_number(note.note_id), note.note_id
