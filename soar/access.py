"""Who may do what: principals, roles, attribute scopes, and the API's token authentication.

Principals come from ``settings.api_tokens_file`` (YAML)::

    principals:
      - name: alice
        token_sha256: 9f86d0...        # or `token: <plain>`; only the digest is kept in memory
        roles: [approver]
        attributes: {env: [prod]}      # alice acts only on resources with env=prod
        slack_user_id: U024BE7LH
        os_user: alice                 # the command line run by this login acts as alice

Roles are cumulative: viewer < responder < approver < admin. Attributes are
scopes: a principal constrained on ``env`` may act only on resources whose
``env`` is one of its values; a resource without that attribute is refused
(fail closed). A principal without attributes is unconstrained. A resource's
attributes are the inventory's labels of the hosts it concerns (``soar.scope``),
never what the alert says about itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from soar import _yaml
from soar.config import Settings
from soar.errors import ConfigError, SourceLocation
from soar.scope import UNSCOPED, Scope

Role = Literal["viewer", "responder", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "responder", "approver", "admin")
RANK: dict[str, int] = {name: i for i, name in enumerate(ROLES)}

# permission -> the least role that holds it (a registry, not an if-chain)
PERMISSIONS: dict[str, Role] = {
    "alerts:read": "viewer",
    "runs:read": "viewer",
    "reports:read": "viewer",
    "metrics:read": "viewer",
    "audit:read": "viewer",
    "alerts:ingest": "responder",
    "alerts:triage": "responder",
    "verdicts:write": "responder",
    "runs:start": "responder",
    "approvals:decide": "approver",
    "runs:rollback": "approver",
    "exceptions:approve": "admin",
    "audit:export": "admin",
    "config:write": "admin",
}


@dataclass(frozen=True)
class Principal:
    """A person or system soar knows: a name, roles and attribute scopes."""

    name: str
    roles: frozenset[str]
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    slack_user_id: str | None = None
    token_sha256: str | None = field(default=None, repr=False)
    os_user: str | None = None

    @property
    def role(self) -> str:
        """The highest role held (what records show)."""
        return max(self.roles, key=lambda r: RANK[r]) if self.roles else "none"

    def has_role(self, least: str) -> bool:
        return any(RANK[r] >= RANK[least] for r in self.roles)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def authorize(principal: Principal | None, permission: str, resource_attrs: dict[str, Any] | None = None) -> Decision:
    """May ``principal`` use ``permission`` on a resource with these attributes? Says why not."""
    if principal is None:
        return Decision(False, "not authenticated")
    least = PERMISSIONS.get(permission)
    if least is None:
        return Decision(False, f"unknown permission {permission!r}")
    if not principal.has_role(least):
        return Decision(False, f"{principal.name} ({principal.role}) lacks {permission}, which needs role {least}")
    attrs = resource_attrs or {}
    for name, allowed in sorted(principal.attributes.items()):
        value = attrs.get(name)
        values = {str(v) for v in value} if isinstance(value, list | tuple | set) else {str(value)}
        if value is None or not values & set(allowed):
            shown = "unset" if value is None else ",".join(sorted(values))
            return Decision(
                False, f"{principal.name} is scoped to {name}={','.join(allowed)}; this resource has {name}={shown}"
            )
    return Decision(True, f"{principal.name} ({principal.role}) may {permission}")


def authorize_in(principal: Principal | None, permission: str, scopes: Sequence[Scope]) -> Decision:
    """``authorize`` in every scope of a resource (each inventory host it concerns); the first refusal."""
    decision = Decision(False, "no scope")
    for scope in scopes or UNSCOPED:
        decision = authorize(principal, permission, dict(scope.labels))
        if not decision.allowed:
            where = f" (host {scope.host})" if scope.host else " (no inventory host)"
            return Decision(False, decision.reason + where)
    return decision


# -- loading principals


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Principals:
    items: list[Principal]
    plain_tokens: list[str]  # kept only so redaction can cut them out of anything written

    def by_token(self, token: str) -> Principal | None:
        digest = token_digest(token)
        found = None
        for p in self.items:  # compare every digest: timing does not reveal which matched
            if p.token_sha256 is not None and hmac.compare_digest(p.token_sha256, digest):
                found = p
        return found

    def by_slack_user(self, user_id: str) -> Principal | None:
        return next((p for p in self.items if p.slack_user_id and p.slack_user_id == user_id), None)

    def by_os_user(self, login: str) -> Principal | None:
        return next((p for p in self.items if p.os_user and p.os_user == login), None)


_cache: dict[str, tuple[str, Principals]] = {}


def load_principals(settings: Settings) -> Principals:
    """The principals file, re-read when its content changes; no file means no principals (every request refused).

    Keyed by the content's digest, not the mtime: a file replaced with the same mtime (``cp -p``, ``touch -r``,
    the same second) must not keep a revoked token valid.
    """
    path = settings.api_tokens_file
    if path is None:
        return Principals([], [])
    if not path.is_absolute():
        path = settings.content_path(path) if not path.exists() else path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"api_tokens_file (SOAR_API_TOKENS_FILE): cannot read {path}: {exc.strerror}") from exc
    if len(data) > _yaml.MAX_FILE_BYTES:
        raise ConfigError(f"{_yaml.TooLarge(path, len(data), _yaml.MAX_FILE_BYTES)}", SourceLocation(path))
    digest = hashlib.sha256(data).hexdigest()
    cached = _cache.get(str(path))
    if cached and cached[0] == digest:
        return cached[1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", SourceLocation(path)) from exc
    principals = parse_principals(text, path)
    _cache[str(path)] = (digest, principals)
    return principals


def parse_principals(text: str, path: Path | str = "<tokens>") -> Principals:
    """Parse and validate the principals YAML; ConfigError at file:line for the first problem."""
    try:
        root, data = _yaml.load_with_node(text)  # an alias is refused at its line, before it expands
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = SourceLocation(path, mark.line + 1, mark.column + 1) if mark else SourceLocation(path)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", loc) from exc
    if not isinstance(data, dict) or not isinstance(data.get("principals"), list):
        raise ConfigError("expected a mapping with a 'principals' list", SourceLocation(path, 1))
    nodes = _principal_nodes(root)
    items: list[Principal] = []
    plain: list[str] = []
    seen_names: set[str] = set()
    seen_tokens: set[str] = set()
    seen_logins: set[str] = set()
    for i, entry in enumerate(data["principals"]):
        line = nodes[i] if i < len(nodes) else None
        loc = SourceLocation(path, line)
        if not isinstance(entry, dict):
            raise ConfigError("each principal is a mapping", loc)
        unknown = set(entry) - {"name", "token", "token_sha256", "roles", "attributes", "slack_user_id", "os_user"}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in a principal", loc)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("a principal needs a name", loc)
        if name in seen_names:
            raise ConfigError(f"principal {name!r} is defined twice", loc)
        seen_names.add(name)
        roles = entry.get("roles") or []
        if isinstance(roles, str):
            roles = [roles]
        bad = [r for r in roles if r not in RANK]
        if bad or not roles:
            raise ConfigError(f"principal {name}: roles must be some of {', '.join(ROLES)}, got {bad or roles}", loc)
        digest = entry.get("token_sha256")
        token = entry.get("token")
        if token is not None:
            if not isinstance(token, str) or len(token) < 16:
                raise ConfigError(f"principal {name}: token must be a string of at least 16 characters", loc)
            plain.append(token)
            digest = token_digest(token)
        if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
            raise ConfigError(f"principal {name}: token_sha256 must be 64 hex digits", loc)
        if digest is not None:
            if digest in seen_tokens:
                raise ConfigError(f"principal {name}: the same token is given to two principals", loc)
            seen_tokens.add(digest)
        attrs_raw = entry.get("attributes") or {}
        if not isinstance(attrs_raw, dict):
            raise ConfigError(f"principal {name}: attributes must be a mapping", loc)
        attrs = {str(k): tuple(str(x) for x in (v if isinstance(v, list) else [v])) for k, v in attrs_raw.items()}
        slack = entry.get("slack_user_id")
        login = entry.get("os_user")
        if login is not None:
            if not isinstance(login, str) or not login.strip():
                raise ConfigError(f"principal {name}: os_user must be a login name", loc)
            if login in seen_logins:
                raise ConfigError(f"principal {name}: os_user {login!r} is given to two principals", loc)
            seen_logins.add(login)
        items.append(Principal(name, frozenset(roles), attrs, str(slack) if slack else None, digest, login))
    return Principals(items, plain)


def _principal_nodes(root: yaml.Node | None) -> list[int]:
    """1-based lines of each item of the ``principals`` list, for error locations."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "principals" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def principal_for_token(settings: Settings, token: str) -> Principal | None:
    return load_principals(settings).by_token(token) if token else None


def principal_for_slack_user(user_id: str, settings: Settings | None = None) -> Principal | None:
    """The principal a Slack user id maps to (for approvals clicked in Slack), or None."""
    if settings is None:
        from soar.config import get_settings

        settings = get_settings()
    return load_principals(settings).by_slack_user(user_id)


def token_values(settings: Settings) -> list[str]:
    """Plain tokens in the principals file (for redaction); unreadable files contribute none."""
    try:
        return list(load_principals(settings).plain_tokens)
    except ConfigError:
        return []


# -- FastAPI


def require(permission: str) -> Any:
    """A FastAPI dependency: authenticate the bearer token and check the role for ``permission``.

    Returns the Principal. 401 without a (known) token, 403 with a role too low. Attribute
    checks on a particular resource are the endpoint's: ``authorize(principal, perm, attrs)``.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    bearer = HTTPBearer(auto_error=False, description="An API token from the principals file")

    def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        settings: Settings = request.app.state.settings
        principal = principal_for_token(settings, creds.credentials)
        if principal is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        decision = _role_only(principal, permission)
        if not decision.allowed:
            raise HTTPException(403, decision.reason)
        return principal

    return Depends(dependency)


def _role_only(principal: Principal, permission: str) -> Decision:
    """The role half of authorize(); the attribute half needs the resource."""
    return authorize(Principal(principal.name, principal.roles), permission, None)


def require_in_scope(principal: Principal, permission: str, scopes: Sequence[Scope], not_found: str) -> None:
    """404 (the same answer as an unknown id) unless ``principal`` may use ``permission`` in every scope.

    An out-of-scope id must not be told apart from one that does not exist: a 403 would confirm it exists.
    """
    if not authorize_in(principal, permission, scopes).allowed:
        raise HTTPException(404, not_found)
