"""Logins and roles.

Mechanism: Panel's own ``BasicAuthProvider`` (``pn.serve(basic_auth={user: password})``),
which signs a ``user`` cookie with the server's cookie secret after a form login at
``/login``. With ``oauth_optional`` on, every page is open to unauthenticated visitors as
the user ``"guest"`` — the kiosk wall screens — who get ``cfg.dashboard.guest_role``.
The role of a logged-in user comes from ``cfg.dashboard.users``. Our own login and logout
templates replace Panel's, which load images from Panel's CDN.

The cookie secret is kept in ``var_dir`` so that logins survive a restart.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.config import DeploymentConfig

__all__ = [
    "GUEST",
    "PERMISSIONS",
    "ALARM_ACTIONS",
    "ALARM_DOMAINS",
    "Identity",
    "allowed",
    "may_act_on_alarm",
    "identity_of",
    "cookie_secret",
    "server_auth_kwargs",
]

GUEST = "guest"  # the name Panel gives an unauthenticated visitor when guests are allowed

#: Who may do what: checked in the handler that acts (dashboard.actions), not by hiding buttons.
#: Alarm domains each role may act on; the same table as rules.service.ACTION_ROLES (the
#: rules service checks again where the action lands; a test keeps the two equal).
ALARM_DOMAINS: dict[str, frozenset[str]] = {
    "admin": frozenset({"lighting", "dust", "vehicle"}),
    "operator": frozenset({"lighting", "dust", "vehicle"}),
    "lighting_engineer": frozenset({"lighting"}),
    "sanitation_supervisor": frozenset({"vehicle", "dust"}),
}
ALARM_ACTIONS = ("acknowledge", "comment", "assign", "shelve", "resolve")

PERMISSIONS: dict[str, frozenset[str]] = {
    "switch_circuit": frozenset({"lighting_engineer", "admin"}),
    **{f"{a}_alarm": frozenset(ALARM_DOMAINS) for a in ALARM_ACTIONS},
    "fleet_control": frozenset({"sanitation_supervisor", "operator", "admin"}),
}

_TEMPLATES = Path(__file__).with_name("templates")
log = logging.getLogger("rongguan.dashboard.auth")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a session belongs to and the role they act with."""

    user: str
    role: str

    @property
    def is_guest(self) -> bool:
        """True for the kiosk guest."""
        return self.user == GUEST


def allowed(role: str, action: str) -> bool:
    """True when ``role`` may perform ``action`` (unknown actions are refused)."""
    return role in PERMISSIONS.get(action, frozenset())


def may_act_on_alarm(role: str, action: str, domain: str) -> bool:
    """True when ``role`` may apply ``action`` to an alarm of ``domain``."""
    return allowed(role, f"{action}_alarm") and domain in ALARM_DOMAINS.get(role, frozenset())


def identity_of(cfg: DeploymentConfig, user: str | None) -> Identity | None:
    """The identity for a server-authenticated user name; None when it has no role."""
    if not user or user == GUEST:
        role = cfg.dashboard.guest_role
        return Identity(GUEST, role) if role else None
    for u in cfg.dashboard.users:
        if u.name == user:
            return Identity(u.name, u.role)
    return None


def cookie_secret(cfg: DeploymentConfig) -> str:
    """The secret that signs login cookies; created once in var_dir, random if that fails."""
    path = cfg.path("dashboard-cookie-secret")
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text
    except OSError:
        pass
    secret = secrets.token_urlsafe(48)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret)
    except OSError as exc:
        log.warning("cannot keep the cookie secret in %s (%s); logins end on restart", path, exc)
    return secret


def server_auth_kwargs(cfg: DeploymentConfig) -> dict[str, Any]:
    """Keyword arguments for ``pn.serve`` that switch on logins (none when no users exist)."""
    users = {u.name: u.password for u in cfg.dashboard.users if u.name != GUEST}
    if not users:
        return {}
    return {
        "basic_auth": users,
        "cookie_secret": cookie_secret(cfg),
        "oauth_optional": cfg.dashboard.guest_role is not None,
        "login_template": str(_TEMPLATES / "login.html"),
        "logout_template": str(_TEMPLATES / "logout.html"),
    }
