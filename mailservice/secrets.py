"""Secrets by reference (R20): the config names an environment variable or a Prefect Secret block.

Resolved at the last moment, wrapped in SecretStr at once, never logged. Errors name the config key
and the variable or block, never a value.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from mailservice.config import ConfigError


def secret_from(env: str | None = None, block: str | None = None, *, key: str) -> SecretStr | None:
    """The secret named by ``env`` or ``block``; ``key`` is the config key, for the error message."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{key}: the environment variable {env} is not set; export it (its value is a secret)")
        return SecretStr(value)
    if block:
        from prefect.blocks.system import Secret

        try:
            return SecretStr(str(Secret.load(block).get()))
        except ValueError:
            raise ConfigError(
                f"{key}: there is no Prefect Secret block named {block!r}; create it with "
                "`prefect block create secret` or in the UI (Blocks → Secret)"
            ) from None
    return None
