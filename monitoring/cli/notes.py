"""`monitoring notes`: add, list and show notes on batch runs (thin commands).

Registered on the root command with `main.add_command(notes)`. Errors go through
`monitoring.cli.options.handle_errors` (exit code 1).
"""

from __future__ import annotations

import json
import sys

import click

from monitoring.cli.options import handle_errors
from monitoring.errors import NoteError
from monitoring.explain.notes import VERDICTS, Note

TABLE_TEXT_CHARS = 60


def _read_text(text: str | None, file: str | None) -> str:
    """The note's text from exactly one of --text and --file (`-` is stdin)."""
    if (text is None) == (file is None):
        raise NoteError("give exactly one of --text and --file")
    if file is None:
        return text  # type: ignore[return-value]
    if file == "-":
        return sys.stdin.read()
    try:
        with open(file, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise NoteError(f"cannot read the note file {file}: {error}") from None


def _table(found: list[Note]) -> str:
    header = ("note_id", "created", "version", "batch_id", "verdict", "samples", "author", "text")
    rows = [header]
    for note in found:
        first = note.text.splitlines()[0]
        text = first if len(first) <= TABLE_TEXT_CHARS else first[: TABLE_TEXT_CHARS - 3] + "..."
        rows.append(
            (
                note.note_id,
                note.created[:19].replace("T", " "),
                note.model_version,
                note.batch_id,
                note.verdict,
                ",".join(note.sample_ids) or "-",
                note.author,
                text,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


@click.group()
def notes() -> None:
    """Notes on the samples of a batch run (the findings of explaining them)."""


@notes.command("add")
@click.option("--run-id", required=True, help="The batch run the note is about.")
@click.option(
    "--sample-ids",
    default="",
    help="Comma-separated ids of the batch's samples (its id column, else row numbers).",
)
@click.option("--verdict", required=True, help=f"One of: {', '.join(VERDICTS)}.")
@click.option("--text", default=None, help="The note (Markdown).")
@click.option("--file", default=None, help="A Markdown file holding the note (`-`: stdin).")
@click.option("--author", default=None, help="Defaults to $USER.")
@handle_errors
def add(
    run_id: str,
    sample_ids: str,
    verdict: str,
    text: str | None,
    file: str | None,
    author: str | None,
) -> None:
    """Write a note on a batch run; prints the note id."""
    from monitoring.track.notes import add_note

    body = _read_text(text, file)
    note = add_note(
        run_id,
        verdict=verdict,
        text=body,
        sample_ids=[s for s in sample_ids.split(",") if s.strip()],
        author=author,
    )
    click.echo(note.note_id)


@notes.command("list")
@click.option("--model-name", required=True, help="The monitored model.")
@click.option("--version", default=None, help="Only this model version (`none`: unregistered).")
@click.option("--verdict", default=None, help="Only notes with this verdict.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def list_(model_name: str, version: str | None, verdict: str | None, fmt: str) -> None:
    """The notes on a model's batch runs, oldest first."""
    from monitoring.track.notes import list_notes

    found = list_notes(model_name=model_name, version=version, verdict=verdict)
    if fmt == "json":
        click.echo(json.dumps([n.to_dict() for n in found], indent=1, ensure_ascii=False))
    elif found:
        click.echo(_table(found))
    else:
        click.echo(f"no notes on the batch runs of {model_name!r}", err=True)


@notes.command("show")
@click.argument("note_id")
@handle_errors
def show(note_id: str) -> None:
    """Print one note as Markdown."""
    from monitoring.track.notes import show_note

    click.echo(show_note(note_id).to_markdown(), nl=False)
