"""Who the command line acts as: an authenticated principal, never a name given as a flag.

The same principals file the API reads (``api_tokens_file``) names who may do what. The
command line is that principal when ``SOAR_TOKEN`` holds its token, or else when the
operating-system account running it (the effective uid, not ``$USER``, which anyone can set)
is mapped to it with ``os_user``. Anything else is refused before the store is opened, so a
decision recorded from the command line always carries a real identity.
"""

from __future__ import annotations

import os
import pwd

from soar.access import Principal, authorize, load_principals
from soar.config import Settings
from soar.errors import Forbidden, InputError

TOKEN_ENV = "SOAR_TOKEN"  # noqa: S105 - the setting's variable, not a token


def os_login() -> str:
    """The account of the effective uid (``$USER``/``$LOGNAME`` are the caller's to set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def cli_principal(settings: Settings) -> Principal:
    """The principal this command line acts as; InputError saying how to become one otherwise."""
    if settings.api_tokens_file is None:
        raise InputError(
            "this command acts as you (what you may see and decide), so it needs to know who you are: "
            "set api_tokens_file (SOAR_API_TOKENS_FILE) to the principals file and map your login there with os_user, "
            f"or export {TOKEN_ENV} with your token"
        )
    principals = load_principals(settings)
    token = settings.token.get_secret_value() if settings.token is not None else ""
    if token:
        found = principals.by_token(token)
        if found is None:
            raise InputError(f"{TOKEN_ENV} is not a token of any principal in {settings.api_tokens_file}")
        return found
    login = os_login()
    found = principals.by_os_user(login)
    if found is None:
        raise InputError(
            f"your login {login!r} is not mapped to a principal in {settings.api_tokens_file} "
            f"(add os_user: {login} to yours) and {TOKEN_ENV} is not set"
        )
    return found


def cli_principal_with(settings: Settings, permission: str) -> Principal:
    """The command line's principal, refused (exit 3) when its role lacks ``permission``."""
    principal = cli_principal(settings)
    decision = authorize(Principal(principal.name, principal.roles), permission, None)
    if not decision.allowed:
        raise Forbidden(decision.reason)
    return principal
