"""A bad config gets one clear error naming the file and the key, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailservice.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
helpdesk:
  url: http://127.0.0.1:8765
  token_env: HELPDESK_TOKEN
ledger: sqlite:///var/ledger.db
mailboxes:
  - name: soporte-demo
    kind: maildir
    path: demo/mailbox
    address: Soporte@HelpPeople.test
    timezone: America/Bogota
    schedule_minutes: 5
    subject_max_chars: 80
    attachment_max_mb: 20
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_shape_loads_with_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    box = config.mailbox("soporte-demo")
    assert box.path == (tmp_path / "demo" / "mailbox").resolve()
    assert config.ledger == f"sqlite:///{(tmp_path / 'var' / 'ledger.db').resolve()}"
    assert box.address == "soporte@helppeople.test"
    assert box.attachment_max_bytes == 20 * 1024 * 1024
    assert box.chunk_size == 100


def test_shipped_examples_are_valid():
    for path in (ROOT / "examples" / "config.yaml", ROOT / "demo" / "config.yaml"):
        assert load_config(path).mailboxes


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("timezone: America/Bogota", "timezone: America/Bogot"), "mailboxes[0] (soporte-demo).timezone"),
        (("schedule_minutes: 5", "schedule_minutes: 0"), "mailboxes[0] (soporte-demo).schedule_minutes"),
        (("kind: maildir", "kind: pop3"), "mailboxes[0] (soporte-demo).kind"),
        (("token_env: HELPDESK_TOKEN", "tokn_env: HELPDESK_TOKEN"), "helpdesk.tokn_env: unknown key"),
        (("url: http://127.0.0.1:8765", "url: 127.0.0.1:8765"), "helpdesk.url"),
        (("address: Soporte@HelpPeople.test", "address: soporte"), "(soporte-demo).address"),
        (("ledger: sqlite:///var/ledger.db", "ledger: var/ledger.db"), "ledger: must be an SQLAlchemy URL"),
    ],
)
def test_bad_value_names_the_file_and_the_key(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message


def test_missing_required_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"mailboxes\[0\] \(soporte-demo\)\.address: required key is missing"):
        load_config(write(tmp_path, GOOD.replace("    address: Soporte@HelpPeople.test\n", "")))


def test_duplicate_mailbox_names_are_refused(tmp_path):
    doubled = GOOD + GOOD.split("mailboxes:\n", 1)[1]
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, doubled))


def test_yaml_syntax_error_gives_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(write(tmp_path, GOOD + "  - name: [unclosed\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cli_refuses_a_bad_config_before_running_anything(tmp_path):
    path = write(tmp_path, GOOD.replace("timezone: America/Bogota", "timezone: Nowhere/Land"))
    result = subprocess.run(
        [sys.executable, "-m", "mailservice.cli", "run", str(path), "--mailbox", "soporte-demo"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Nowhere/Land" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists()  # nothing ran: no ledger was created


def test_cli_names_a_missing_token_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HELPDESK_TOKEN", raising=False)
    path = write(tmp_path, GOOD)
    (tmp_path / "demo" / "mailbox").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "mailservice.cli", "run", str(path), "--mailbox", "soporte-demo"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "HELPDESK_TOKEN is not set" in result.stderr
