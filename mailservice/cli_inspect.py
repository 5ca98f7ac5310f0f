"""``mailservice inspect FILE.eml...``: the pipeline's own parse → validate → clean on files.

Operators use it to answer "why was this mail refused?" and "what would the request look like?"
without a mailbox, a helpdesk or Prefect. It runs the very functions an ingest run runs
(``tasks.extract.parse_raw``, ``tasks.validation.judge_chunk`` with the Great Expectations suite,
``tasks.drafts.clean_chunk``), so its decision is the run's decision, with two documented
exceptions that the output states:

* without ``--users`` there is no user matrix, so R4 (known senders) is not checked
  (``"sender_check": "skipped"``);
* without ``--mailbox-address`` R5's "the mailbox is among the recipients" is not checked and the
  loop guard does not know the mailbox's own address (``"recipient_check": "skipped"``).

Any file gets a decision and the command exits 0: garbage and empty files are ``quarantined``
with the parser's reason, like in a run; a file that cannot be read gets ``error``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

SKIPPED = "skipped"
CHECKED = "checked"
# Decisions, as an operator reads them (a run records accepted / rejected / quarantined).
DECISIONS = {"accepted": "created", "rejected": "rejected", "quarantined": "quarantined"}
CHUNK_SIZE = 200  # files judged per Great Expectations run


class UsersFileError(Exception):
    pass


def read_users(path: Path) -> list[dict[str, str]]:
    """A user matrix CSV (``email,name[,id]``, header required) as helpdesk-style user dicts."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            if "email" not in columns:
                raise UsersFileError(f"{path}: the users CSV needs a header with an 'email' column (email,name[,id])")
            users = []
            for line, row in enumerate(reader, start=2):
                email = (row.get(columns["email"]) or "").strip()
                if not email:
                    continue
                user_id = (row.get(columns["id"]) or "").strip() if "id" in columns else ""
                name = (row.get(columns["name"]) or "").strip() if "name" in columns else ""
                users.append({"id": user_id or f"csv-line-{line}", "email": email, "name": name})
            return users
    except OSError as exc:
        raise UsersFileError(f"{path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsersFileError(f"{path}: not a readable UTF-8 CSV file ({exc})") from exc


def _error_report(path: str, message: str) -> dict[str, Any]:
    return {
        "file": path,
        "decision": "error",
        "reasons": ["file_unreadable"],
        "signals": [],
        "error": message,
        "title": "",
        "subject": "",
        "sender": None,
        "description": "",
        "attachments": [],
    }


def _read(path: Path) -> bytes | str:
    """The file's bytes, or a message saying why they cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory, not a message file"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return exc.strerror or str(exc)


def _received_at(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.now(UTC)


def _attachments(draft: Any) -> list[dict[str, Any]]:
    if draft is None:
        return []
    return [
        {"filename": a.filename, "content_type": a.content_type, "size": a.size, "inline": a.inline}
        for a in draft.attachments
    ]


def inspect_files(
    paths: Iterable[Path | str],
    *,
    users: list[dict[str, str]] | None = None,
    mailbox_address: str | None = None,
    subject_max_chars: int = 80,
    attachment_max_bytes: int = 20 * 1024 * 1024,
    keep_emoji: bool = False,
    language: str = "es",
    routing: tuple = (),
) -> list[dict[str, Any]]:
    """One report per path, in order: what an ingest run would decide for that message, and why."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from tasks.drafts import CleanSettings, clean_chunk, draft_for
    from tasks.extract import parse_raw
    from tasks.model import MessageRef, RawMessage
    from tasks.user_matrix import matrix_frame
    from tasks.validation import Judged, Limits, judge_chunk

    now = datetime.now(UTC)
    matrix = matrix_frame(users or [], now)
    address = (mailbox_address or "").strip().lower()
    skipped = set()
    if users is None:
        skipped.add("unknown_sender")
    if not address:
        skipped.add("not_addressed_to_mailbox")
    limits = Limits(subject_max_chars, attachment_max_bytes, keep_emoji)
    settings = CleanSettings(subject_max_chars, attachment_max_bytes, keep_emoji, language, tuple(routing))

    reports: list[dict[str, Any] | None] = []
    pending: list[tuple[int, str, Any]] = []  # (report index, file name, Extracted)
    for raw_path in paths:
        path = Path(raw_path)
        data = _read(path)
        if isinstance(data, str):
            reports.append(_error_report(str(raw_path), data))
            continue
        ref = MessageRef(source_id=str(raw_path), received_at=_received_at(path), size=len(data))
        pending.append((len(reports), str(raw_path), parse_raw(RawMessage(ref, data))))
        reports.append(None)

    for start in range(0, len(pending), CHUNK_SIZE):
        chunk = pending[start : start + CHUNK_SIZE]
        items = [item for _, _, item in chunk]
        if any(item.parsed is not None for item in items):
            judged, _ = judge_chunk(items, matrix, address, limits)
        else:  # nothing to validate (judge_chunk's sender join fails on an empty matrix and no senders)
            judged = [Judged(item) for item in items]
        # Checks that cannot be made without a matrix or a mailbox address are dropped, visibly.
        judged = [
            Judged(j.item, j.classification, replace(j.verdict, reasons=tuple(r for r in j.verdict.reasons
                                                                               if r not in skipped)))
            if j.verdict is not None
            else j
            for j in judged
        ]
        results = clean_chunk(judged, settings)
        for (index, name, item), entry, result in zip(chunk, judged, results, strict=True):
            reports[index] = _report(name, item, entry, result, skipped, settings, draft_for)
    return [r for r in reports if r is not None]


def _report(name: str, item: Any, entry: Any, result: Any, skipped: set[str], settings: Any, build: Any) -> dict:
    decision = DECISIONS.get(result.outcome, result.outcome)
    parsed = item.parsed
    report: dict[str, Any] = {
        "file": name,
        "decision": decision,
        "reasons": [],
        "signals": list(result.signals),
        "title": "",
        "subject": result.subject or "",
        "sender": result.sender,
        "description": "",
        "attachments": [],
        "omitted": [],
        "kind": entry.classification.kind if entry.classification is not None else None,
        "sender_check": SKIPPED if "unknown_sender" in skipped else CHECKED,
        "recipient_check": SKIPPED if "not_addressed_to_mailbox" in skipped else CHECKED,
        "message_key": result.key,
        "message_id": result.message_id,
        "size": result.size,
    }
    if decision == "quarantined":
        report["reasons"] = [result.reason] if result.reason else []
        report["defects"] = list(parsed.defects) if parsed is not None else []
        return report
    verdict = entry.verdict
    report["requester_id"] = verdict.requester_id
    report["notes"] = list(verdict.notes)
    report["defects"] = list(parsed.defects)
    report["date"] = parsed.date.isoformat() if parsed.date else None
    draft = result.draft
    report["routing_rule"] = draft.routing_rule if draft is not None and decision != "rejected" else None
    if decision == "rejected":
        report["reasons"] = [result.reason, *(r for r in verdict.reasons if r != result.reason)]
        try:  # what the request would have looked like: helps to read a refusal, never decides it
            draft = build(entry, settings)
        except Exception:
            draft = None
    # "preview": the title, description and attachments of a refused message are what its request
    # would have looked like (built for the operator); a run builds no request for it.
    report["preview"] = decision == "rejected"
    if draft is not None:
        report["title"] = draft.title
        report["description"] = draft.description
        report["attachments"] = _attachments(draft)
        report["omitted"] = [{"filename": o.filename, "size": o.size, "reason": o.reason} for o in draft.omitted]
    return report


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} B"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of one report."""
    decision = report["decision"]
    label = {"created": "created (a request would be created)"}.get(decision, decision)
    lines = [f"== {report['file']}", f"decision:    {label}"]
    lines.append(f"reasons:     {', '.join(report['reasons']) or '-'}")
    if report.get("error"):
        lines.append(f"error:       {report['error']}")
        return "\n".join(lines)
    if report.get("kind"):
        lines.append(f"kind:        {report['kind']}")
    lines.append(f"signals:     {', '.join(report['signals']) or '-'}")
    lines.append(f"sender:      {report.get('sender') or '-'}  (R4 sender check: {report.get('sender_check')})")
    lines.append(f"recipients:  R5 mailbox check: {report.get('recipient_check')}")
    lines.append(f"subject:     {report.get('subject') or '-'}")
    if report.get("defects"):
        lines.append(f"defects:     {', '.join(report['defects'])}")
    if decision == "quarantined":
        return "\n".join(lines)
    if report.get("preview"):
        lines.append("(refused: the request below is a preview, a run creates none)")
    lines.append(f"title:       {report['title'] or '-'}")
    if report["attachments"] or report.get("omitted"):
        lines.append("attachments:")
        for a in report["attachments"]:
            inline = "  inline" if a["inline"] else ""
            lines.append(f"  - {a['filename']}  {a['content_type']}  {_size(a['size'])}{inline}")
        for o in report.get("omitted") or []:
            lines.append(f"  - {o['filename']}  {_size(o['size'])}  left out: {o['reason']}")
    else:
        lines.append("attachments: -")
    lines.append("description:")
    lines.extend(f"  | {line}" for line in (report["description"] or "").split("\n"))
    return "\n".join(lines)


def inspect_command(
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml, Maildir files); any bytes are accepted.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file per line, instead of text for people.")
    ] = False,
    users: Annotated[
        Path | None,
        typer.Option("--users", help="User matrix CSV (email,name[,id]); without it R4 (known senders) is skipped."),
    ] = None,
    mailbox_address: Annotated[
        str | None,
        typer.Option(
            "--mailbox-address",
            help="The mailbox's own address; without it R5's recipient check and the loop guard are skipped.",
        ),
    ] = None,
    subject_max_chars: Annotated[int, typer.Option(min=10, max=1000, help="R7 title length.")] = 80,
    attachment_max_mb: Annotated[float, typer.Option(min=0.0, help="R11 per-file attachment limit, in MB.")] = 20,
    keep_emoji: Annotated[bool, typer.Option(help="R9: keep characters outside the BMP.")] = False,
    language: Annotated[str, typer.Option(help="Language of markers and notes (es, en).")] = "es",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Take the mailbox's settings (address, limits, routing rules) from this config."),
    ] = None,
    mailbox: Annotated[str | None, typer.Option("--mailbox", help="The mailbox of --config to judge as.")] = None,
) -> None:
    """Show what an ingest run would decide for each message file, and why — no mailbox, helpdesk or Prefect."""
    routing: tuple = ()
    if config is not None:
        from mailservice.config import ConfigError, load_config
        from tasks.user_matrix import dataset_path, read_dataset

        try:
            service = load_config(config)
            box = service.mailbox(mailbox) if mailbox else service.mailboxes[0]
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        mailbox_address = mailbox_address or box.address
        subject_max_chars, attachment_max_mb = box.subject_max_chars, box.attachment_max_mb
        keep_emoji, language, routing = box.keep_emoji, box.language, box.routing_rules()
        cached = read_dataset(dataset_path(service.data_dir, service.helpdesk.url))
        if users is None and cached is not None:  # the run's own cached user matrix
            user_rows = [{"email": e, "id": i, "name": n} for e, i, n in
                         zip(cached["email"], cached["user_id"], cached["name"], strict=True)]
        else:
            user_rows = None
    else:
        user_rows = None
    user_list = user_rows
    if users is not None:
        try:
            user_list = read_users(users)
        except UsersFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    reports = inspect_files(
        files,
        users=user_list,
        mailbox_address=mailbox_address,
        subject_max_chars=subject_max_chars,
        attachment_max_bytes=int(attachment_max_mb * 1024 * 1024),
        keep_emoji=keep_emoji,
        language=language,
        routing=routing,
    )
    for index, report in enumerate(reports):
        text = json.dumps(report, ensure_ascii=False) if as_json else ("\n" if index else "") + format_report(report)
        # A file name with undecodable bytes must not end the listing with an encoding error.
        typer.echo(text.encode("utf-8", "replace").decode("utf-8"))


def summarize(reports: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Count of reports by decision (for scripts and tests)."""
    counts: dict[str, int] = {}
    for report in reports:
        counts[report["decision"]] = counts.get(report["decision"], 0) + 1
    return counts
