"""Everything a flow run needs for one mailbox, from the config file or from Prefect blocks.

``mailservice run CONFIG`` runs in process from the file; a deployment run on a worker has no
file and reads what ``mailservice apply`` stored in blocks. Both end in the same ``Runtime``, so
the flow does not know or care which it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from blocks.helpdesk import HelpdeskApi
from blocks.ledger import Ledger
from blocks.mailbox import MailboxSource
from blocks.maildir import MaildirMailbox
from mailservice.config import ConfigError, HelpdeskConfig, MailboxConfig, ServiceConfig, load_config, parse_config
from mailservice.secrets import secret_from

CONFIG_ENV = "MAILSERVICE_CONFIG"
SETTINGS_BLOCK = "mailservice"

_active_config: ServiceConfig | None = None


def use_config(config: ServiceConfig | None) -> None:
    """Make flows in this process read this config instead of the Prefect blocks."""
    global _active_config
    _active_config = config


def active_config() -> ServiceConfig | None:
    if _active_config is not None:
        return _active_config
    path = os.environ.get(CONFIG_ENV)
    return load_config(path) if path else None


def helpdesk_token(helpdesk: HelpdeskConfig) -> SecretStr | None:
    """The token from where the config points (R20): an environment variable or a Secret block."""
    return secret_from(helpdesk.token_env, helpdesk.token_block, key="helpdesk.token_env/token_block")


def helpdesk_block(helpdesk: HelpdeskConfig) -> HelpdeskApi:
    return HelpdeskApi(
        url=helpdesk.url,
        token=helpdesk_token(helpdesk),
        timeout_seconds=helpdesk.timeout_seconds,
        max_retries=helpdesk.max_retries,
        backoff_factor=helpdesk.backoff_factor,
    )


def mailbox_source(mailbox: MailboxConfig) -> MailboxSource:
    """The mailbox block for a config entry, secrets resolved (R20). Blocks do the I/O."""
    if mailbox.kind == "maildir":
        return MaildirMailbox(path=str(mailbox.path))
    if mailbox.kind == "imap":
        from blocks.imap import ImapMailbox

        return ImapMailbox.from_config(mailbox)
    if mailbox.kind == "gmail":
        from blocks.gmail import GmailMailbox

        return GmailMailbox.from_config(mailbox)
    raise ConfigError(f"mailboxes ({mailbox.name}).kind: {mailbox.kind!r} is not supported")


def mailbox_block_class(kind: str) -> type:
    """The block type that reads a mailbox of this kind (imported only when that kind is used)."""
    if kind == "imap":
        from blocks.imap import ImapMailbox

        return ImapMailbox
    if kind == "gmail":
        from blocks.gmail import GmailMailbox

        return GmailMailbox
    return MaildirMailbox


@dataclass
class Runtime:
    config: ServiceConfig
    mailbox: MailboxConfig
    source: MailboxSource
    helpdesk: HelpdeskApi
    ledger_url: str
    from_blocks: bool = False

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir


def runtime_from_config(config: ServiceConfig, mailbox: str) -> Runtime:
    box = config.mailbox(mailbox)
    return Runtime(config, box, mailbox_source(box), helpdesk_block(config.helpdesk), config.ledger)


def runtime_from_blocks(mailbox: str) -> Runtime:
    from blocks.settings import ServiceSettings

    try:
        settings = ServiceSettings.load(SETTINGS_BLOCK)
    except ValueError:
        raise ConfigError(
            f"no config: pass a config file (mailservice run CONFIG), set {CONFIG_ENV}, "
            "or run `mailservice apply CONFIG` so deployments can read their settings from Prefect"
        ) from None
    config = parse_config(settings.config, Path("/prefect-block/mailservice"))
    box = config.mailbox(mailbox)
    source = mailbox_block_class(box.kind).load(mailbox)
    helpdesk = HelpdeskApi.load(settings.helpdesk_block)
    return Runtime(config, box, source, helpdesk, settings.ledger_url.get_secret_value(), from_blocks=True)


def build_runtime(mailbox: str) -> Runtime:
    config = active_config()
    if config is not None:
        return runtime_from_config(config, mailbox)
    return runtime_from_blocks(mailbox)


def open_ledger(url: str) -> Ledger:
    return Ledger(url)


def smtp_block_name(mailbox: str) -> str:
    return f"{mailbox}-smtp"


def ack_sender(box: MailboxConfig, source: MailboxSource, *, from_blocks: bool = False):
    """Who sends acknowledgements for ``notify.mode: email``: the SMTP block, or the Gmail mailbox itself."""
    transport = box.notify.transport(box.kind)
    if transport == "gmail":
        return source
    from blocks.smtp import SmtpSender

    if from_blocks:
        sender = SmtpSender.load(smtp_block_name(box.name))
    else:
        sender = SmtpSender.from_config(box.notify, key=f"mailboxes ({box.name}).notify")
    if sender.oauth_from_mailbox:
        provider = getattr(source, "access_token", None)
        if provider is None:
            raise ConfigError(
                f"mailboxes ({box.name}).notify.smtp.oauth_from_mailbox: only an imap mailbox with oauth can lend "
                "its tokens; give password_env or oauth_token_env instead"
            )
        sender.use_token_provider(provider)
    return sender


def ack_context(box: MailboxConfig, source: MailboxSource, engine, *, from_blocks: bool = False):
    """Everything the acknowledgement stage needs, or None when the mailbox does not send them."""
    if box.notify.mode != "email":
        return None
    from blocks.ack_store import AckStore
    from tasks.acknowledge import DEFAULT_TEMPLATE_DIR, AckPolicy
    from tasks.acknowledgements import AckContext

    notify = box.notify
    own = {box.address, notify.sender_address(box.address)}
    if notify.smtp is not None and notify.smtp.username:
        own.add(notify.smtp.username.lower())
    return AckContext(
        mailbox=box.name,
        mailbox_address=box.address,
        tz=box.tz,
        language=notify.language or box.language,
        from_address=notify.sender_address(box.address),
        from_name=notify.from_name,
        message_id_domain=notify.id_domain(box.address),
        template_dir=notify.template_dir or DEFAULT_TEMPLATE_DIR,
        link_template=notify.link_template,
        policy=AckPolicy(
            mailbox_address=box.address,
            own_addresses=tuple(sorted(own)),
            max_per_sender_per_hour=notify.max_per_sender_per_hour,
            notify_unknown_senders=notify.notify_unknown_senders,
        ),
        sender=ack_sender(box, source, from_blocks=from_blocks),
        store=AckStore(engine),
    )
