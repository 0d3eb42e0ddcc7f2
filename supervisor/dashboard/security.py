"""Who may look and who may act.

- Bound to a loopback address (the default) anyone on this host may look and act,
  as with `qmulti stop`: the host's users are already trusted with the nodes.
- `--auth user:password` (or QMULTI_DASHBOARD_AUTH) puts every page, API answer
  and action behind HTTP basic auth.
- On any other address, actions need that auth: without it they are refused with
  401, whatever else the request carries.
- Every action is a POST that carries the page's CSRF token (a header or a form
  field): a page of another site can make the browser POST, but cannot read ours
  to learn the token. The token is random per dashboard process.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import secrets

from qmulti.exceptions import UsageError

AUTH_ENV_VAR = "QMULTI_DASHBOARD_AUTH"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise UsageError("--auth needs USER:PASSWORD, both non-empty")
    return user, password


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere, so treat it as public


class Guard:
    def __init__(self, auth: tuple[str, str] | None, address: str) -> None:
        self.auth = auth
        self.loopback = is_loopback(address)
        self.csrf = secrets.token_urlsafe(32)

    def credentials_ok(self, header: str | None) -> bool:
        if self.auth is None:
            return False
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # Both compared whatever the first gives: the time taken says nothing of either.
        good_user = hmac.compare_digest(user.encode(), self.auth[0].encode())
        good_password = hmac.compare_digest(password.encode(), self.auth[1].encode())
        return good_user and good_password

    def may_look(self, header: str | None) -> bool:
        return self.auth is None or self.credentials_ok(header)

    def may_act(self, header: str | None) -> bool:
        if self.auth is not None:
            return self.credentials_ok(header)
        return self.loopback  # no auth configured: actions only on a loopback address

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf)
