"""``mailservice inspect``: the pipeline's decision on files, for any bytes, with exit code 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mailservice.cli_inspect import format_report, inspect_command, inspect_files, read_users, summarize

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(CORPUS.glob("*.eml"))
MAILBOX = "soporte@cliente.com.co"
KEYS = {"file", "title", "subject", "sender", "description", "attachments", "decision", "reasons", "signals"}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command(name="inspect")(inspect_command)


@app.command(name="version")  # a second command, so "inspect" is a subcommand as in mailservice.cli
def _version() -> None:
    typer.echo("test")


def run(*args: str):
    result = CliRunner().invoke(app, ["inspect", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def expected_decision(path: Path) -> tuple[str, str | None]:
    """What the corpus expectation says a run decides (R4 and R5's recipient check aside)."""
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    if "decision" in expected:
        return expected["decision"], expected.get("reason")
    if expected["kind"] != "new":
        return "rejected", expected["kind"]
    return "created", None


@pytest.fixture(scope="module")
def corpus_reports() -> dict[str, dict]:
    result = run("--json", *map(str, CASES))
    assert result.exit_code == 0, result.output
    reports = lines(result)
    assert len(reports) == len(CASES)
    return {Path(r["file"]).name: r for r in reports}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_inspect_decision_matches_the_corpus_expectation(path: Path, corpus_reports: dict[str, dict]) -> None:
    report = corpus_reports[path.name]
    assert report.keys() >= KEYS
    decision, reason = expected_decision(path)
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    if expected.get("own_addresses"):  # the loop guard needs the mailbox's address: see the next test
        assert report["decision"] == "created"
        return
    assert report["decision"] == decision, report["reasons"]
    if reason:
        assert report["reasons"][0] == reason
    assert report["sender_check"] == "skipped" and report["recipient_check"] == "skipped"
    if decision != "quarantined" and "title" in expected:
        assert report["title"] == expected["title"]
    if decision == "created" and "attachments" in expected and "attachment_max_bytes" not in expected:
        assert [a["filename"] for a in report["attachments"]] == [a["filename"] for a in expected["attachments"]]
        for got, want in zip(report["attachments"], expected["attachments"], strict=True):
            assert set(got) == {"filename", "content_type", "size", "inline"}
            if want.get("size") is not None:
                assert got["size"] == want["size"]


def test_loop_guard_and_recipient_check_use_the_mailbox_address() -> None:
    loop = CORPUS / "23-own-mailbox-loop-guard.eml"
    new = CORPUS / "01-outlook-html-mso.eml"
    reports = lines(run("--json", "--mailbox-address", MAILBOX, str(loop), str(new)))
    assert [(r["decision"], r["reasons"][:1]) for r in reports] == [("rejected", ["auto_reply"]), ("created", [])]
    assert reports[1]["recipient_check"] == "checked"
    other = lines(run("--json", "--mailbox-address", "otro@cliente.com.co", str(new)))[0]
    assert (other["decision"], other["reasons"]) == ("rejected", ["not_addressed_to_mailbox"])


def test_users_csv_turns_on_the_known_sender_check(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("email,name,id\nACQuinonez@Comandina.com.co,Ana,u-7\n", encoding="utf-8")
    known = CORPUS / "01-outlook-html-mso.eml"
    unknown = CORPUS / "02-gmail-alternative.eml"
    reports = lines(run("--json", "--users", str(users), str(known), str(unknown)))
    assert [(r["decision"], r["reasons"]) for r in reports] == [("created", []), ("rejected", ["unknown_sender"])]
    assert reports[0]["requester_id"] == "u-7" and reports[0]["sender_check"] == "checked"


def test_garbage_empty_missing_and_directory_each_get_a_decision_and_exit_zero(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(bytes(range(256)) * 3)
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    headers_only = tmp_path / "headers-only.eml"
    headers_only.write_bytes(b"From: a@b.co\nSubject: solo cabeceras")
    result = run("--json", str(garbage), str(empty), str(tmp_path / "missing.eml"), str(tmp_path), str(headers_only))
    assert result.exit_code == 0
    reports = lines(result)
    assert [(r["decision"], r["reasons"][:1]) for r in reports] == [
        ("quarantined", ["unparseable:not_mail"]),
        ("quarantined", ["unparseable:empty"]),
        ("error", ["file_unreadable"]),
        ("error", ["file_unreadable"]),
        ("rejected", ["missing_body"]),
    ]
    assert reports[2]["error"] == "no such file"
    assert "Traceback" not in result.output
    for report in reports:
        assert report.keys() >= KEYS


def test_text_output_shows_title_attachments_decision_and_description() -> None:
    result = run(str(CORPUS / "17-outlook-signature-logo-repeated.eml"), str(CORPUS / "15-dsn-bounce-postfix.eml"))
    assert result.exit_code == 0
    out = result.stdout
    assert "decision:    created (a request would be created)" in out
    assert "title:       Error al aprobar orden de compra" in out
    assert "  - image001.png  image/png  19.7 KB  inline" in out
    assert "  | [imagen: image001.png]" in out
    assert "decision:    rejected\nreasons:     bounce" in out
    assert "R4 sender check: skipped" in out


def test_unreadable_users_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--users", str(tmp_path / "nope.csv"), str(CASES[0]))
    assert result.exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("correo,nombre\nx@y.co,X\n", encoding="utf-8")
    result = run("--users", str(bad), str(CASES[0]))
    assert result.exit_code == 2 and "email" in result.output


def test_limits_options_reach_the_pipeline() -> None:
    oversize = CORPUS / "21-oversize-attachment.eml"
    (report,) = lines(run("--json", "--attachment-max-mb", "0.1", str(oversize)))
    assert report["decision"] == "created"
    assert report["omitted"] == [{"filename": "grabación pantalla.mp4", "size": 153600, "reason": "over_size_limit"}]
    assert "attachment_over_limit" in report["notes"]
    (short,) = lines(run("--json", "--subject-max-chars", "20", str(CORPUS / "01-outlook-html-mso.eml")))
    assert len(short["title"]) <= 20 and "subject_shortened" in short["notes"]


def test_library_api_and_helpers(tmp_path: Path) -> None:
    users = tmp_path / "u.csv"
    users.write_text("\ufeffEmail,Name\nana@x.co,Ana\n\n", encoding="utf-8")
    assert read_users(users) == [{"id": "csv-line-2", "email": "ana@x.co", "name": "Ana"}]
    reports = inspect_files([CASES[0], tmp_path / "none.eml"])
    assert summarize(reports) == {"created": 1, "error": 1}
    assert format_report(reports[1]).startswith(f"== {tmp_path / 'none.eml'}\ndecision:    error")


def test_inspect_needs_no_prefect(tmp_path: Path) -> None:
    import subprocess
    import sys

    garbage = tmp_path / "x.eml"
    garbage.write_bytes(b"\x00\x01 no es correo")
    code = (
        "import sys\n"
        "from mailservice.cli_inspect import inspect_files\n"
        f"print(inspect_files([{str(garbage)!r}])[0]['decision'])\n"
        "print(any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["quarantined", "False"]


def test_config_gives_the_mailbox_its_address_limits_and_routing_rules(tmp_path):
    """issue 5 §3: the routing rule a run would record is shown by inspect."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "helpdesk: {url: 'http://127.0.0.1:9'}\n"
        f"data_dir: {tmp_path}\n"
        "mailboxes:\n"
        "  - name: soporte\n    kind: maildir\n    path: m\n    address: soporte@helppeople.test\n"
        "    routing:\n"
        "      - {name: facturacion, when: {subject_any: [factura]}, set: {category: Facturación}}\n",
        encoding="utf-8",
    )
    demo = Path(__file__).resolve().parents[2] / "demo" / "messages"
    result = run("--json", "--config", str(config), "--users", str(demo.parent / "users.csv"),
                 str(demo / "07-outlook-windows-1252-qp.eml"), str(demo / "25-otro-buzon.eml"))
    routed, elsewhere = lines(result)
    assert (routed["decision"], routed["routing_rule"]) == ("created", "facturacion")
    assert elsewhere["reasons"] == ["not_addressed_to_mailbox"]  # the address came from the config
