"""Who may use the server: bearer tokens, compared in constant time, and the bind rule.

Tokens come from ``--token``, ``$MEDSEGAI_TOKEN`` and ``--token-file`` (one per line, ``name:token``
or just the token; ``#`` comments), so several users each have their own and the logs say whose
job it was. A loopback server without tokens is open to local users only, like Jupyter's
``--ip 127.0.0.1`` without a token; any other bind address without a token is refused.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import MedSegAIError
from ..remote.protocol import TOKEN_ENV

MIN_TOKEN_CHARS = 16


class AuthConfigError(MedSegAIError):
    """The server's authentication settings are unsafe or unreadable; it does not start."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as reachable from outside


class Tokens:
    """name -> token; ``user_for`` answers in time independent of where (or whether) it matches."""

    def __init__(self, tokens: Optional[Dict[str, str]] = None):
        self._tokens = dict(tokens or {})

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def user_for(self, presented: Optional[str]) -> Optional[str]:
        presented_b = (presented or "").encode("utf-8")
        found = None
        for name, token in self._tokens.items():  # no early exit: every token is compared
            if hmac.compare_digest(presented_b, token.encode("utf-8")) and found is None:
                found = name
        return found


def load_tokens(token: Optional[str] = None, token_file: Optional[str] = None,
                env: Optional[Dict[str, str]] = None) -> Tokens:
    env = os.environ if env is None else env
    found: Dict[str, str] = {}
    for name, value in (("token", token), ("env", env.get(TOKEN_ENV))):
        if value:
            found[name] = value.strip()
    if token_file:
        path = Path(token_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise AuthConfigError(f"The token file {path} cannot be read ({exc.strerror or exc}).") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition(":")
            name, value = (name.strip(), value.strip()) if sep else (f"user{n}", name.strip())
            if not value:
                raise AuthConfigError(f"{path}, line {n}: no token after '{name}:'.")
            found[name] = value
    short = [name for name, value in found.items() if len(value) < MIN_TOKEN_CHARS]
    if short:
        raise AuthConfigError(f"Token(s) for {', '.join(short)} are shorter than {MIN_TOKEN_CHARS} characters; "
                              f"make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return Tokens(found)


def check_bind(host: str, tokens: Tokens, tls: bool) -> List[str]:
    """Refuse an exposed server without tokens; returns warnings to log for a risky but allowed setup."""
    if is_loopback(host):
        return []
    if not tokens.enabled:
        raise AuthConfigError(f"Refusing to listen on {host} without authentication: anyone who can reach this "
                              f"machine could run jobs. Pass --token, set {TOKEN_ENV} or use --token-file (or bind "
                              f"127.0.0.1).")
    if not tls:
        return [f"Listening on {host} without TLS: tokens and images cross the network unencrypted. Use "
                f"--ssl-certfile/--ssl-keyfile outside a trusted network."]
    return []
