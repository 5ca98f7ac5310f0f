"""The reference helpdesk honours docs/helpdesk-api.yaml: checked with plain HTTP calls, no client block."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from typer.testing import CliRunner

from mailservice.cli_helpdesk import helpdesk_app
from mailservice.helpdesk_server import read_users_csv
from tests.support.helpdesk import ReferenceHelpdesk, run_reference_helpdesk, write_users_csv

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "helpdesk-api.yaml"
TOKEN = "reference-token-123"
USERS = [("ana@example.com", "Ana Pérez"), ("bob@example.com", "Bob Ruiz")]


@pytest.fixture
def users_csv(tmp_path: Path) -> Path:
    return write_users_csv(tmp_path / "users.csv", USERS)


@pytest.fixture
def helpdesk(tmp_path: Path, users_csv: Path) -> Iterator[ReferenceHelpdesk]:
    with run_reference_helpdesk(tmp_path / "hd.db", users_csv, token=TOKEN, max_attachment_mb=0.01) as hd:
        yield hd


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_request(
    url: str,
    external_id: str = "msg-1",
    files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    token: str = TOKEN,
    idempotency_key: str | None = None,
    **fields: Any,
) -> requests.Response:
    body = {
        "external_id": external_id,
        "title": "No puedo entrar al correo",
        "description": "Me sale un error al iniciar sesión.",
        "requester_email": "bob@example.com",
        **fields,
    }
    parts: list[tuple[str, Any]] = [("request", (None, json.dumps(body), "application/json"))]
    parts += [("attachments", (name, content, ctype)) for name, ctype, content in files]
    headers = {**auth(token), "Idempotency-Key": idempotency_key or external_id}
    return requests.post(f"{url}/requests", files=parts, headers=headers, timeout=5)


def error_of(response: requests.Response) -> dict[str, Any]:
    return response.json()["error"]


def test_users_are_paged_with_totals(tmp_path: Path) -> None:
    csv_path = write_users_csv(tmp_path / "u.csv", [(f"u{i}@example.com", f"U {i}") for i in range(250)])
    with run_reference_helpdesk(tmp_path / "hd.db", csv_path) as hd:
        first = requests.get(f"{hd.url}/users", timeout=5).json()
        last = requests.get(f"{hd.url}/users", params={"page": 3, "per_page": 100}, timeout=5).json()
        too_many = requests.get(f"{hd.url}/users", params={"per_page": 1001}, timeout=5)

    assert (len(first["items"]), first["per_page"], first["total"], first["next_page"]) == (100, 100, 250, 2)
    assert (len(last["items"]), last["page"], last["next_page"]) == (50, 3, None)
    assert too_many.status_code == 422
    assert error_of(too_many) == {"code": "invalid_request", "message": "per_page is at most 1000", "field": "per_page"}


def test_user_ids_survive_a_restart_with_a_reordered_csv(tmp_path: Path) -> None:
    db = tmp_path / "hd.db"
    with run_reference_helpdesk(db, write_users_csv(tmp_path / "a.csv", USERS)) as hd:
        before = {u["email"]: u["id"] for u in requests.get(f"{hd.url}/users", timeout=5).json()["items"]}
    reordered = [*reversed(USERS), ("carla@example.com", "Carla")]
    with run_reference_helpdesk(db, write_users_csv(tmp_path / "b.csv", reordered)) as hd:
        after = {u["email"]: u["id"] for u in requests.get(f"{hd.url}/users", timeout=5).json()["items"]}

    assert before == {"ana@example.com": "u-1", "bob@example.com": "u-2"}
    assert after == {**before, "carla@example.com": "u-3"}


def test_users_csv_with_ids_and_bad_rows(tmp_path: Path) -> None:
    good = tmp_path / "ids.csv"
    good.write_text("Email,Name,ID\nAna@Example.com,Ana,emp-7\n\nbob@example.com,,\n", encoding="utf-8")
    assert read_users_csv(good) == [("emp-7", "Ana@Example.com", "Ana"), (None, "bob@example.com", "bob")]

    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nana@example.com,Ana\nnot-an-address,X\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_users_csv(bad)
    headless = tmp_path / "headless.csv"
    headless.write_text("ana@example.com,Ana\n", encoding="utf-8")
    with pytest.raises(ValueError, match="email,name"):
        read_users_csv(headless)


def test_create_then_repeat_returns_the_same_request(helpdesk: ReferenceHelpdesk) -> None:
    files = [("a.txt", "text/plain", b"hello"), ("b.png", "image/png", b"\x89PNG....")]
    first = post_request(helpdesk.url, files=files, requester_email="BOB@example.com", priority="high")
    again = post_request(helpdesk.url, files=[], title="A different title")

    assert first.status_code == 201 and again.status_code == 200
    created = first.json()
    assert again.json() == created  # unchanged by the repeat
    assert created["number"] == 1001
    assert created["requester_id"] == "u-2" and created["requester_email"] == "bob@example.com"
    assert (created["channel"], created["status"], created["assigned"], created["priority"]) == (
        "mail",
        "new",
        "unassigned",
        "high",
    )
    assert created["attachments"] == [
        {"name": "a.txt", "content_type": "text/plain", "size": 5},
        {"name": "b.png", "content_type": "image/png", "size": 8},
    ]
    download = requests.get(f"{helpdesk.url}/requests/{created['id']}/attachments/1", headers=auth(), timeout=5)
    assert download.content == b"\x89PNG...." and download.headers["content-type"] == "image/png"


def test_requests_listing_is_a_list_without_params_and_paged_with_them(helpdesk: ReferenceHelpdesk) -> None:
    for n in range(3):
        assert post_request(helpdesk.url, external_id=f"msg-{n}").status_code == 201

    plain = requests.get(f"{helpdesk.url}/requests", headers=auth(), timeout=5).json()
    by_id = requests.get(f"{helpdesk.url}/requests", params={"external_id": "msg-1"}, headers=auth(), timeout=5)
    paged = requests.get(f"{helpdesk.url}/requests", params={"per_page": 2}, headers=auth(), timeout=5).json()

    assert [r["number"] for r in plain] == [1001, 1002, 1003]
    assert [r["external_id"] for r in by_id.json()["items"]] == ["msg-1"]
    assert (len(paged["items"]), paged["total"], paged["next_page"]) == (2, 3, 2)


def test_unknown_request_is_a_json_404(helpdesk: ReferenceHelpdesk) -> None:
    response = requests.get(f"{helpdesk.url}/requests/nope", headers=auth(), timeout=5)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    unknown_route = requests.get(f"{helpdesk.url}/tickets", headers=auth(), timeout=5)
    assert unknown_route.status_code == 404 and error_of(unknown_route)["code"] == "not_found"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 81}, "title"),
        ({"priority": "critical"}, "priority"),
        ({"received_at": "2024-05-03T09:15:00"}, "received_at"),  # no offset: ambiguous
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_payloads_are_422_naming_the_field(helpdesk: ReferenceHelpdesk, fields: dict, field: str) -> None:
    response = post_request(helpdesk.url, **fields)
    assert response.status_code == 422
    assert (error_of(response)["code"], error_of(response)["field"]) == ("invalid_request", field)


def test_request_part_and_idempotency_key_are_checked(helpdesk: ReferenceHelpdesk) -> None:
    no_part = requests.post(f"{helpdesk.url}/requests", files={"x": (None, "1")}, headers=auth(), timeout=5)
    not_json = requests.post(f"{helpdesk.url}/requests", files={"request": (None, "{")}, headers=auth(), timeout=5)
    mismatch = post_request(helpdesk.url, external_id="msg-1", idempotency_key="msg-2")

    assert [r.status_code for r in (no_part, not_json, mismatch)] == [422, 422, 422]
    assert [error_of(r)["field"] for r in (no_part, not_json, mismatch)] == ["request", "request", "Idempotency-Key"]


def test_unknown_requester_and_oversized_attachment(helpdesk: ReferenceHelpdesk) -> None:
    stranger = post_request(helpdesk.url, requester_email="eve@example.org")
    big = post_request(helpdesk.url, files=[("huge.zip", "application/zip", b"0" * 20_000)])

    assert stranger.status_code == 422 and error_of(stranger)["code"] == "unknown_requester"
    assert big.status_code == 413 and error_of(big)["code"] == "attachment_too_large"
    assert "huge.zip" in error_of(big)["message"] and error_of(big)["filename"] == "huge.zip"
    assert helpdesk.requests() == []


def test_auth_is_required_and_answers_json(helpdesk: ReferenceHelpdesk) -> None:
    missing = requests.get(f"{helpdesk.url}/users", timeout=5)
    wrong = requests.get(f"{helpdesk.url}/users", headers=auth("nope"), timeout=5)
    page_by_browser = requests.get(f"{helpdesk.url}/", auth=("agent", TOKEN), timeout=5)

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert error_of(wrong)["code"] == "unauthorized" and TOKEN not in wrong.text
    assert page_by_browser.status_code == 200
    assert requests.get(f"{helpdesk.url}/", timeout=5).headers["WWW-Authenticate"].startswith("Basic")


def test_html_page_lists_requests_escaped(helpdesk: ReferenceHelpdesk) -> None:
    post_request(helpdesk.url, title="<script>alert(1)</script> & más", files=[("log.txt", "text/plain", b"abc")])

    page = requests.get(f"{helpdesk.url}/", headers=auth(), timeout=5)

    assert page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; más" in page.text
    assert "1001" in page.text and "Bob Ruiz" in page.text and "log.txt" in page.text


def test_fault_sequence_then_normal_and_stats_count_everything(helpdesk: ReferenceHelpdesk) -> None:
    helpdesk.set_faults(sequence=[429, 503], retry_after_seconds=7)
    first = requests.get(f"{helpdesk.url}/users", headers=auth(), timeout=5)
    second = post_request(helpdesk.url)
    third = post_request(helpdesk.url)
    home = requests.get(f"{helpdesk.url}/", headers=auth(), timeout=5)

    assert (first.status_code, first.headers["Retry-After"], error_of(first)["code"]) == (429, "7", "too_many_requests")
    assert (second.status_code, third.status_code, home.status_code) == (503, 201, 200)
    assert helpdesk.faults()["sequence"] == []
    assert helpdesk.stats()["POST /requests"] == 2
    assert helpdesk.stats()["GET /users"] == 1


def test_faults_never_touch_admin_or_the_page(helpdesk: ReferenceHelpdesk) -> None:
    helpdesk.set_faults(rate_500=1.0)
    assert requests.get(f"{helpdesk.url}/", headers=auth(), timeout=5).status_code == 200
    assert helpdesk.stats()["PUT /_admin/faults"] == 1
    assert post_request(helpdesk.url).status_code == 500
    bad = requests.put(f"{helpdesk.url}/_admin/faults", json={"rate_500": 2}, headers=auth(), timeout=5)
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_request"


def test_delay_after_commit_stores_before_answering(helpdesk: ReferenceHelpdesk) -> None:
    helpdesk.set_faults(delay_after_commit_ms=600)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_request_with_timeout(helpdesk.url, timeout=0.2)
    helpdesk.clear_faults()
    assert [r["external_id"] for r in helpdesk.requests()] == ["msg-1"]
    assert post_request(helpdesk.url).status_code == 200


def post_request_with_timeout(url: str, timeout: float) -> requests.Response:
    body = {"external_id": "msg-1", "title": "T", "description": "D", "requester_email": "ana@example.com"}
    files = {"request": (None, json.dumps(body), "application/json")}
    return requests.post(f"{url}/requests", files=files, headers=auth(), timeout=timeout)


def test_data_and_numbering_survive_a_restart(tmp_path: Path, users_csv: Path) -> None:
    db = tmp_path / "hd.db"
    with run_reference_helpdesk(db, users_csv, token=TOKEN) as hd:
        created = post_request(hd.url, external_id="msg-a").json()
        hd.delete_request(created["id"])
        post_request(hd.url, external_id="msg-b")
    with run_reference_helpdesk(db, None, token=TOKEN) as hd:
        numbers = [r["number"] for r in hd.requests()]
        repeat = post_request(hd.url, external_id="msg-b")
        fresh = post_request(hd.url, external_id="msg-c")

    assert numbers == [1002]  # deleted numbers are never reused
    assert repeat.status_code == 200 and fresh.json()["number"] == 1003


def test_two_servers_on_one_database_never_duplicate(tmp_path: Path, users_csv: Path) -> None:
    db = tmp_path / "shared.db"
    with (
        run_reference_helpdesk(db, users_csv, token=TOKEN) as one,
        run_reference_helpdesk(db, users_csv, token=TOKEN) as two,
    ):
        statuses: list[int] = []
        start = threading.Barrier(6)

        def create(url: str) -> None:
            start.wait()
            statuses.append(post_request(url, external_id="msg-race").status_code)

        threads = [threading.Thread(target=create, args=(hd.url,)) for hd in (one, two) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        stored = one.requests()

    assert sorted(statuses) == [200, 200, 200, 200, 200, 201]
    assert len(stored) == 1


def test_cli_refuses_a_missing_users_file_and_hides_the_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        helpdesk_app,
        ["serve", "--db", str(tmp_path / "hd.db"), "--users", str(tmp_path / "missing.csv")],
        env={"HELPDESK_TOKEN": "cli-secret-token"},
    )
    assert result.exit_code == 2
    assert "missing.csv" in result.output and "cli-secret-token" not in result.output
    help_text = CliRunner().invoke(helpdesk_app, ["serve", "--help"], env={"HELPDESK_TOKEN": "cli-secret-token"})
    assert "HELPDESK_TOKEN" in help_text.output and "cli-secret-token" not in help_text.output


def assert_matches_contract(instance: Any, schema_name: str) -> None:
    components = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))["components"]
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_answers_match_the_openapi_contract(helpdesk: ReferenceHelpdesk) -> None:
    created = post_request(helpdesk.url, files=[("a.txt", "text/plain", b"x")], received_at="2024-05-03T09:15:00Z")
    users = requests.get(f"{helpdesk.url}/users", headers=auth(), timeout=5).json()
    page = requests.get(f"{helpdesk.url}/requests", params={"page": 1}, headers=auth(), timeout=5).json()
    rejected = post_request(helpdesk.url, external_id="msg-2", requester_email="eve@example.org")

    assert_matches_contract(created.json(), "Request")
    assert_matches_contract(users, "UserPage")
    assert_matches_contract(page, "RequestPage")
    assert_matches_contract(rejected.json(), "Error")
    assert_matches_contract(helpdesk.faults(), "Faults")
    with pytest.raises(jsonschema.ValidationError):
        assert_matches_contract({**created.json(), "number": "1001"}, "Request")
