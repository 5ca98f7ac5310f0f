"""The service settings stored in Prefect by ``mailservice apply``, for deployment runs.

A worker running a scheduled deployment has no config file: it reads this block (the validated
config, paths made absolute) and the helpdesk block that holds the token. The ledger URL is a
secret field, since a PostgreSQL URL may carry a password.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class ServiceSettings(Block):
    """The validated service config, as applied by ``mailservice apply``.

    Example:
        ```python
        from blocks.settings import ServiceSettings
        settings = ServiceSettings.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Mail Service Settings"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/main/docs/images/logos/prefect-logo.png"
    _description = "helppeople Mail Service: mailboxes, limits and the ledger, as applied from the config file."

    config: dict = Field(description="The service config (without secrets), paths absolute.")
    ledger_url: SecretStr = Field(description="SQLAlchemy URL of the ledger database.")
    helpdesk_block: str = Field("helpdesk", description="Name of the Helpdesk API block to use.")
