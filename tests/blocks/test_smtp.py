"""The SMTP block against a real aiosmtpd on loopback: STARTTLS with a test CA, AUTH, refusals, outages."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from blocks.smtp import (
    SmtpAuthError,
    SmtpRejected,
    SmtpSender,
    SmtpTlsError,
    SmtpUnavailable,
)
from mailservice.config import ConfigError
from mailservice.notify_config import NotifyConfig
from tasks.acknowledge import build_reply, is_our_message_id
from tests.support.dovecot import make_certificate
from tests.support.smtp import SmtpTestServer, smtp_server

USER = "soporte@cliente.test"
PASSWORD = "s3cret-Passw0rd-ZZ"
TOKEN = "ya29.token-que-no-debe-verse"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpTestServer]:
    with smtp_server(
        tmp_path / "smtp",
        users={USER: PASSWORD},
        tokens={USER: TOKEN},
        reject_recipients={"nadie@cliente.test"},
        tempfail_recipients={"ocupado@cliente.test"},
    ) as server:
        yield server


def block(server: SmtpTestServer, **overrides) -> SmtpSender:
    settings = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "ca_file": str(server.cafile),
        "username": USER,
        "password": SecretStr(PASSWORD),
        "timeout_seconds": 5,
    } | overrides
    return SmtpSender(**settings)


def ack(to: str = "ana.quinonez@cliente.test", number: int = 1234) -> bytes:
    return build_reply(
        original_message_id="<CAF=orig-1@mail.gmail.com>",
        original_references=None,
        original_subject="No puedo imprimir la factura",
        from_address=USER,
        from_name="Mesa de Servicio",
        to_address=to,
        subject=f"Solicitud No. {number}: Impresión de facturas",
        body=f"Señor(a) José Peña:\n\nCordial saludo.\n\nSu solicitud fue creada con el número {number}.\n",
        message_id_domain="cliente.test",
        request_number=number,
    )


def assert_no_secret(exc: BaseException) -> None:
    text = f"{exc} {exc!r} {exc.args}"
    for secret in (PASSWORD, TOKEN):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


# ----------------------------------------------------------------------------- sending


def test_sends_over_starttls_with_auth_and_the_message_arrives_whole(smtp: SmtpTestServer) -> None:
    block(smtp).send(ack(), USER, ["ana.quinonez@cliente.test"])

    (envelope,) = smtp.envelopes
    assert envelope.mail_from == USER
    assert envelope.rcpt_tos == ["ana.quinonez@cliente.test"]
    assert smtp.handler.logins == [("PLAIN", USER)]  # the server only accepts AUTH after STARTTLS
    msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
    assert msg["Subject"] == "Re: Solicitud No. 1234: Impresión de facturas"
    assert msg["In-Reply-To"] == "<CAF=orig-1@mail.gmail.com>"
    assert msg["References"] == "<CAF=orig-1@mail.gmail.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Helppeople-Ack"] == "1234"
    assert is_our_message_id(msg["Message-ID"])
    body = msg.get_content().replace("\r\n", "\n")
    assert body == "Señor(a) José Peña:\n\nCordial saludo.\n\nSu solicitud fue creada con el número 1234.\n"


def test_one_connection_and_one_login_for_a_batch(smtp: SmtpTestServer) -> None:
    with block(smtp).session() as session:
        for number in (1, 2, 3):
            session.send(ack(number=number), USER, [f"user{number}@cliente.test"])
        assert session.sent == 3
    assert len(smtp.envelopes) == 3
    assert smtp.handler.logins == [("PLAIN", USER)]
    assert [m["X-Helppeople-Ack"] for m in smtp.messages()] == ["1", "2", "3"]


def test_xoauth2_login(smtp: SmtpTestServer) -> None:
    block(smtp, password=None, oauth_token=SecretStr(TOKEN)).send(ack(), USER, ["ana@cliente.test"])
    assert smtp.handler.logins == [("XOAUTH2", USER)]
    assert len(smtp.envelopes) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd: implicit TLS is TLS
def test_implicit_tls(tmp_path: Path) -> None:
    with smtp_server(tmp_path / "smtps", users={USER: PASSWORD}, security="tls") as server:
        block(server).send(ack(), USER, ["ana@cliente.test"])
        assert len(server.envelopes) == 1


def test_plain_smtp_only_on_loopback(tmp_path: Path) -> None:
    with smtp_server(tmp_path / "plain", security="none", auth_required=False) as server:
        block(server, username=None, password=None, ca_file=None).send(ack(), USER, ["ana@cliente.test"])
        assert len(server.envelopes) == 1
        # A client that wants STARTTLS never falls back to clear text.
        with pytest.raises(SmtpTlsError, match="does not offer STARTTLS") as caught:
            block(server, security="starttls").send(ack(), USER, ["ana@cliente.test"])
        assert not caught.value.retryable
        assert len(server.envelopes) == 1
    with pytest.raises(ValidationError, match="allowed only for"):
        SmtpSender(host="smtp.cliente.test", port=25, security="none")


# ----------------------------------------------------------------------------- failures


def test_wrong_password_is_a_clear_auth_error_without_the_password(smtp: SmtpTestServer) -> None:
    wrong = "Wr0ng-pass-XYZ"
    with pytest.raises(SmtpAuthError) as caught:
        block(smtp, password=SecretStr(wrong)).send(ack(), USER, ["ana@cliente.test"])
    error = caught.value
    assert f"127.0.0.1:{smtp.port}" in str(error) and USER in str(error)
    assert "refused the login (535" in str(error) and "password" in str(error)
    assert wrong not in f"{error} {error!r}"
    assert base64.b64encode(f"\0{USER}\0{wrong}".encode()).decode() not in str(error)
    assert isinstance(error, SmtpUnavailable) and not error.retryable  # later run, once a person fixed it
    assert smtp.envelopes == []


def test_bad_xoauth2_token_is_refused_without_the_token(smtp: SmtpTestServer) -> None:
    bad = "ya29.expired-token-abc"
    with pytest.raises(SmtpAuthError, match="token may have expired") as caught:
        block(smtp, password=None, oauth_token=SecretStr(bad)).send(ack(), USER, ["ana@cliente.test"])
    assert bad not in f"{caught.value} {caught.value!r}"


def test_server_down_is_unavailable_and_the_next_attempt_succeeds(smtp: SmtpTestServer) -> None:
    sender = block(smtp)
    smtp.stop()  # SMTP is down
    with pytest.raises(SmtpUnavailable, match=rf"127\.0\.0\.1:{smtp.port}.*connection refused") as caught:
        sender.send(ack(), USER, ["ana@cliente.test"])
    assert caught.value.retryable and type(caught.value) is SmtpUnavailable
    assert_no_secret(caught.value)
    smtp.start()  # back for the next run
    sender.send(ack(), USER, ["ana@cliente.test"])
    assert len(smtp.envelopes) == 1


def test_server_that_never_answers_times_out(smtp: SmtpTestServer) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SmtpUnavailable, match=r"no answer within 0\.3 s") as caught:
            block(smtp, port=port, timeout_seconds=0.3).send(ack(), USER, ["ana@cliente.test"])
        assert time.monotonic() - started < 3
        assert caught.value.retryable


def test_unknown_ca_is_refused_unless_ca_file_is_given(smtp: SmtpTestServer, tmp_path: Path) -> None:
    other_ca, _ = make_certificate(tmp_path, "other-ca")
    for ca_file in (None, str(other_ca)):  # the system store, then a CA that did not sign the server
        with pytest.raises(SmtpTlsError, match=r"certificate not trusted.*set ca_file") as caught:
            block(smtp, ca_file=ca_file).send(ack(), USER, ["ana@cliente.test"])
        assert not caught.value.retryable
        assert_no_secret(caught.value)
    assert smtp.envelopes == [] and smtp.handler.logins == []  # nothing, not even the login, before trust
    block(smtp, ca_file=smtp.cafile.read_text()).send(ack(), USER, ["ana@cliente.test"])  # PEM text works too
    block(smtp).send(ack(), USER, ["ana@cliente.test"])
    assert len(smtp.envelopes) == 2


def test_missing_ca_file_is_a_clear_error(smtp: SmtpTestServer, tmp_path: Path) -> None:
    with pytest.raises(SmtpTlsError, match="cannot read the CA file"):
        block(smtp, ca_file=str(tmp_path / "nope.pem")).send(ack(), USER, ["ana@cliente.test"])


def test_refused_recipient_is_rejected_and_the_session_goes_on(smtp: SmtpTestServer) -> None:
    with block(smtp).session() as session:
        with pytest.raises(SmtpRejected, match=r"nadie@cliente\.test refused \(550") as caught:
            session.send(ack(to="nadie@cliente.test"), USER, ["nadie@cliente.test"])
        assert caught.value.code == 550 and caught.value.recipients == ("nadie@cliente.test",)
        assert not caught.value.retryable
        with pytest.raises(SmtpUnavailable, match=r"temporarily refused \(450") as busy:
            session.send(ack(to="ocupado@cliente.test"), USER, ["ocupado@cliente.test"])
        assert busy.value.retryable
        session.send(ack(), USER, ["ana@cliente.test"])  # the same connection still works
    assert [e.rcpt_tos for e in smtp.envelopes] == [["ana@cliente.test"]]


def test_partly_refused_recipients_say_who_got_it(smtp: SmtpTestServer) -> None:
    with pytest.raises(SmtpRejected) as caught:
        block(smtp).send(ack(), USER, ["ana@cliente.test", "nadie@cliente.test"])
    assert caught.value.accepted == ("ana@cliente.test",)
    assert caught.value.recipients == ("nadie@cliente.test",)
    assert [e.rcpt_tos for e in smtp.envelopes] == [["ana@cliente.test"]]


def test_a_dropped_connection_fails_the_rest_of_the_batch_fast(smtp: SmtpTestServer) -> None:
    with block(smtp).session() as session:
        session.send(ack(number=1), USER, ["ana@cliente.test"])
        smtp.stop()  # closes the open connection too
        with pytest.raises(SmtpUnavailable):
            session.send(ack(number=2), USER, ["ana@cliente.test"])
        started = time.monotonic()
        with pytest.raises(SmtpUnavailable, match="failed earlier in this batch"):
            session.send(ack(number=3), USER, ["ana@cliente.test"])
        assert time.monotonic() - started < 0.5
    assert len(smtp.envelopes) == 1


def test_scrub_removes_every_form_of_the_secret() -> None:
    sender = SmtpSender(host="smtp.cliente.test", username=USER, password=SecretStr(PASSWORD))
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert PASSWORD not in sender._scrub(f"535 bad {PASSWORD} {plain}")
    assert plain not in sender._scrub(f"535 bad {plain}")
    assert PASSWORD not in repr(sender) and PASSWORD not in str(sender.model_dump())


# ----------------------------------------------------------------------------- settings and config


def test_block_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="not both"):
        SmtpSender(host="smtp.cliente.test", username=USER, password=SecretStr("a"), oauth_token=SecretStr("b"))
    with pytest.raises(ValidationError, match="needs a username"):
        SmtpSender(host="smtp.cliente.test", password=SecretStr("a"))
    with pytest.raises(ValidationError, match="needs a password, an oauth_token or oauth_from_mailbox"):
        SmtpSender(host="smtp.cliente.test", username=USER)
    assert SmtpSender(host="smtp.cliente.test").security == "starttls"


def test_the_issue_config_shape_builds_a_working_block(smtp: SmtpTestServer, monkeypatch) -> None:
    monkeypatch.setenv("SMTP_TEST_PASSWORD", PASSWORD)
    notify = NotifyConfig.model_validate(
        {
            "mode": "email",
            "from": "Soporte@Cliente.test",
            "language": "es",
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "starttls": True, "ca_file": str(smtp.cafile),
                     "username": USER, "password_env": "SMTP_TEST_PASSWORD"},
        }
    )  # fmt: skip
    assert notify.from_address == "soporte@cliente.test"
    assert notify.transport("imap") == "smtp"
    assert notify.id_domain("buzon@otro.test") == "cliente.test"
    sender = SmtpSender.from_config(notify)
    assert sender.security == "starttls" and sender.password.get_secret_value() == PASSWORD
    sender.send(ack(), notify.sender_address("x@y.test"), ["ana@cliente.test"])
    assert len(smtp.envelopes) == 1


def test_from_config_names_the_missing_variable_never_a_value(monkeypatch) -> None:
    monkeypatch.delenv("SMTP_MISSING_PASSWORD", raising=False)
    notify = NotifyConfig.model_validate(
        {"mode": "email", "smtp": {"host": "smtp.office365.com", "username": USER,
                                   "password_env": "SMTP_MISSING_PASSWORD"}}
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"mailboxes \(soporte\)\.notify\.smtp\.password_env.*SMTP_MISSING_PASSWORD"):
        SmtpSender.from_config(notify, key="mailboxes (soporte).notify")


def test_notify_config_defaults_and_rules() -> None:
    assert NotifyConfig().mode == "none" and NotifyConfig().transport("imap") is None
    assert NotifyConfig().max_per_sender_per_hour == 5 and NotifyConfig().notify_unknown_senders is False
    implicit = NotifyConfig.model_validate({"mode": "email", "smtp": {"host": "smtp.cliente.test", "starttls": False}})
    assert (implicit.smtp.effective_security, implicit.smtp.effective_port) == ("tls", 465)
    assert NotifyConfig.model_validate({"smtp": {"host": "smtp.cliente.test"}}).smtp.effective_port == 587
    assert NotifyConfig(mode="email").transport("gmail") == "gmail"
    with pytest.raises(ValueError, match=r"needs notify\.smtp"):
        NotifyConfig(mode="email").transport("imap")
    bad = [
        ({"smtp": {"host": "smtp.cliente.test", "security": "none"}}, "only for 127.0.0.1"),
        ({"smtp": {"host": "smtp.cliente.test", "starttls": True, "security": "tls"}}, "contradicts"),
        ({"smtp": {"host": "smtp.cliente.test", "password_env": "X"}}, "needs username"),
        ({"smtp": {"host": "smtp.cliente.test", "username": "u"}}, "username needs one of"),
        ({"smtp": {"host": "smtp.cliente.test", "username": "u", "password_env": "X", "oauth_token_env": "Y"}},
         "at most one"),
        ({"smtp": {"host": "smtps://smtp.cliente.test"}}, "host name"),
        ({"smtp": {"host": "smtp.cliente.test", "pasword_env": "X"}}, "Extra inputs"),
        ({"mode": "sms"}, "mode"),
        ({"from": "soporte"}, "not an e-mail address"),
        ({"link_template": "helpdesk/requests/{number}"}, "http"),
        ({"link_template": "https://hd/requests/{numero}"}, r"\{numero\}"),
        ({"max_per_sender_per_hour": -1}, "greater than or equal"),
        ({"message_id_domain": "no domain"}, "not a domain"),
    ]
    for data, message in bad:
        with pytest.raises(ValidationError, match=message):
            NotifyConfig.model_validate(data)


def test_xoauth2_with_the_imap_mailbox_token_from_msal(tmp_path, trust_identity):
    """issue 5 §1: SMTP with the same credentials style as the IMAP mailbox — one msal app, one token."""
    from pydantic import SecretStr

    from blocks.imap import ImapMailbox

    identity = trust_identity
    user = "soporte@helppeople.test"
    app = identity.register_app(user)
    mailbox = ImapMailbox(
        host="127.0.0.1", username=user, mailbox_name="soporte", tenant_id=identity.tenant,
        client_id=app.client_id, client_secret=SecretStr(app.secret), authority_host=identity.authority_host,
    )
    token = mailbox.access_token()  # msal caches it: the SMTP login below reuses this very token
    with smtp_server(tmp_path / "smtp", tokens={user: token}) as server:
        sender = SmtpSender(
            host="127.0.0.1", port=server.port, security="starttls", ca_file=str(server.cafile), username=user,
            oauth_from_mailbox=True,
        ).use_token_provider(mailbox.access_token)
        sender.send(b"From: soporte@helppeople.test\r\nTo: ana@cliente.test\r\nSubject: x\r\n\r\nok\r\n",
                    user, ["ana@cliente.test"])
        assert server.handler.logins == [("XOAUTH2", user)]
    assert [r["grant"] for r in identity.token_requests(app.client_id)] == ["client_credentials"]


def test_oauth_from_mailbox_without_a_provider_is_a_clear_error(tmp_path):
    with smtp_server(tmp_path / "smtp") as server:
        sender = SmtpSender(host="127.0.0.1", port=server.port, security="starttls", ca_file=str(server.cafile),
                            username="soporte@helppeople.test", oauth_from_mailbox=True)
        with pytest.raises(SmtpAuthError, match="no token provider"):
            sender.send(b"Subject: x\r\n\r\nok\r\n", "soporte@helppeople.test", ["a@b.test"])
