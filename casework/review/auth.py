"""Who may use the review page: users from a YAML file, scrypt password hashes, signed session cookies, CSRF tokens.

users.yaml:
    users:
      ann:   {password: "scrypt$16384$8$1$<salt hex>$<hash hex>", role: investigator, bank: BANK_A}
      fiona: {password: "scrypt$...", role: analyst}
      dora:  {password: "scrypt$...", role: auditor}
Investigators see their own bank's alerts only; analysts (FIU) see all; auditors see the decision and access logs
and nothing else (no alert, account, case or report). `thb-signals hash-password`
makes a hash. Sessions are HMAC-signed cookies (HttpOnly, SameSite=Strict) that carry the user and a
CSRF token every form must return; the signing key comes from THB_SESSION_SECRET or is made at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from schemas import strict_yaml

ROLES = ("investigator", "analyst", "auditor")
AUDITOR_PATHS = ("/audit", "/access", "/logout")  # all an auditor may open
SCRYPT = (2**14, 8, 1)
SESSION_SECONDS = 8 * 3600
FREE_FAILURES, LOCK_AFTER, MAX_DELAY = 5, 10, 60  # failures before a delay; failures before a lock; longest delay (s)
ADDRESS_QUIET = 15 * 60  # an address with no failed login for this long starts again


def hash_password(password: str, salt: bytes | None = None) -> str:
    n, r, p = SCRYPT
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return _same(got.hex(), digest)


def usable_hash(stored) -> bool:
    """A hash a login can match: scrypt at least as costly as ours and within the memory hashlib allows a login (32 MiB),
    a salt of 16 bytes or more, a 32-byte digest. Anything else would start a server where that user can never sign in."""
    m = re.fullmatch(
        r"scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$((?:[0-9a-f]{2}){16,64})\$((?:[0-9a-f]{2}){32})", str(stored or "")
    )
    if not m:
        return False
    n, r, p = (int(x) for x in m.groups()[:3])
    return SCRYPT[0] <= n and n & (n - 1) == 0 and r >= 1 and p >= 1 and 128 * r * (n + 2 + p) <= 32 * 2**20


@dataclass(frozen=True)
class User:
    name: str
    role: str
    bank: str | None

    @property
    def sees_all_banks(self) -> bool:
        return self.role == "analyst"

    @property
    def is_auditor(self) -> bool:
        return self.role == "auditor"

    @property
    def sees_all_logs(self) -> bool:
        return self.role in ("analyst", "auditor")

    def may_see(self, bank_id: str) -> bool:
        return self.sees_all_banks or bank_id == self.bank


class UsersError(ValueError):
    pass


class Throttled(Exception):
    """Too many failed logins for this user or address: 'wait' or 'locked'."""


def load_users(path: str | Path) -> dict[str, dict]:
    try:
        data = strict_yaml.load(Path(path).read_text(encoding="utf-8")) or {}
    except strict_yaml.StrictYamlError as e:  # a second `ann:` would replace the first: an investigator an analyst
        raise UsersError(f"{path}: {e}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users or {}, dict) or not all(isinstance(u, dict) for u in (users or {}).values()):
        raise UsersError(f"{path}: users: must be a mapping of name: {{password, role, bank}} (see README, Review page)")
    users = users or {}
    if not users:
        raise UsersError(f"{path}: users: none are given, so nobody could sign in (see README, Review page)")
    for name, u in users.items():
        if not usable_hash(u.get("password")):
            raise UsersError(
                f"{path}: user {name} needs a scrypt password hash as thb-signals hash-password makes it "
                f"(scrypt$N$r$p$<salt hex>$<hash hex>, N at least {SCRYPT[0]})"
            )
        if u.get("role") not in ROLES:
            raise UsersError(f"{path}: user {name} has role {u.get('role')!r}; one of {', '.join(ROLES)}")
        if u["role"] == "investigator" and not u.get("bank"):
            raise UsersError(f"{path}: investigator {name} needs a bank")
    return users


# checked for unknown users, so an unknown name costs one scrypt like a known one (made once, not per attempt)
DUMMY_HASH = hash_password(secrets.token_hex(8))


class Throttle:
    """Failed logins per key (a user name or a client address): after FREE_FAILURES a growing wait
    (2, 4, 8 ... up to MAX_DELAY seconds) before the next try; a user name is locked after LOCK_AFTER until an analyst
    lifts it, an address only waits and starts again after ADDRESS_QUIET seconds without a failure.
    In memory: a restart forgets counts and locks (and, with a made-up secret, all sessions)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.failures: dict[str, int] = {}
        self.next_try: dict[str, float] = {}
        self.last: dict[str, float] = {}  # when each key last failed
        self.lock = threading.Lock()  # logins check passwords in worker threads, side by side

    def attempt(self, user_key: str, addr_key: str) -> None:
        """Before a password is checked: raises Throttled ('locked' or 'wait') if the user name or the address may not
        try, else counts the attempt against the user name at once, so that a burst of parallel guesses at one account
        cannot all pass before any is counted (`succeeded` takes it back). The address counts a failure only when
        there was one (`failed`): colleagues behind one address who sign in at the same moment are not held up."""
        with self.lock:
            for key in (user_key, addr_key):
                self._forget_quiet_address(key)
                why = self._refused(key)
                if why:
                    raise Throttled(why)
            self._count(user_key)

    def failed(self, addr_key: str) -> None:
        """A wrong password (or name), counted against the address too."""
        with self.lock:
            self._count(addr_key)

    def succeeded(self, user_key: str) -> None:
        """A right password: the user's run of failures ends. The address's failures stand (else anyone with an
        account could wipe an address's count between guesses at others); they are forgotten after ADDRESS_QUIET."""
        with self.lock:
            self.failures.pop(user_key, None)
            self.next_try.pop(user_key, None)

    def _count(self, key: str) -> None:
        n = self.failures[key] = self.failures.get(key, 0) + 1
        self.last[key] = self.clock()
        if n >= FREE_FAILURES:
            self.next_try[key] = self.clock() + min(MAX_DELAY, 2 ** (n - FREE_FAILURES + 1))

    def _forget_quiet_address(self, key: str) -> None:
        """An address that has not failed for ADDRESS_QUIET seconds starts again: it only ever waits, never locks."""
        if key.startswith("addr:") and self.clock() - self.last.get(key, self.clock()) > ADDRESS_QUIET:
            self.failures.pop(key, None)
            self.next_try.pop(key, None)

    def _refused(self, key: str) -> str | None:
        """'locked', 'wait' or None (may try). Only a user name locks: an address (a shared proxy, an office behind one
        NAT) waits, or one person's typing would lock everyone there out, the analysts who could lift it too."""
        if self.failures.get(key, 0) >= LOCK_AFTER and not key.startswith("addr:"):
            return "locked"
        return "wait" if self.clock() < self.next_try.get(key, 0.0) else None

    def clear(self, key: str) -> bool:
        with self.lock:
            had = key in self.failures
            self.failures.pop(key, None)
            self.next_try.pop(key, None)
            return had

    def locked(self) -> list[str]:
        with self.lock:
            return sorted(k for k, n in self.failures.items() if n >= LOCK_AFTER and not k.startswith("addr:"))


class Sessions:
    """Signed, expiring session cookies whose ids must also be live server-side (logout revokes them)."""

    def __init__(self, users: dict[str, dict], secret: bytes | None = None):
        self.users = users
        env = os.environ.get("THB_SESSION_SECRET")
        self.secret = secret or (env.encode() if env else secrets.token_bytes(32))
        self.live: dict[str, float] = {}  # session id -> expiry
        self.lock = threading.Lock()  # logins run in worker threads
        self.throttle = Throttle()

    def login(self, name: str, password: str, addr: str = "") -> str | None:
        """A session cookie, or None; raises Throttled when the user or the address must wait or is locked."""
        keys = [f"user:{name}", f"addr:{addr}"]
        self.throttle.attempt(*keys)  # counted against the user name until the password is found right
        u = self.users.get(name)
        ok = check_password(password, u["password"] if u else DUMMY_HASH)
        if not (u and ok):
            self.throttle.failed(keys[1])
            return None
        self.throttle.succeeded(keys[0])
        sid, exp = secrets.token_urlsafe(18), int(time.time()) + SESSION_SECONDS
        with self.lock:
            self.live = {k: e for k, e in self.live.items() if e >= time.time()}
            self.live[sid] = exp
        return self._sign({"u": name, "exp": exp, "csrf": secrets.token_urlsafe(24), "sid": sid})

    def logout(self, cookie: str | None) -> None:
        body = self._body(cookie)
        if body:
            with self.lock:
                self.live.pop(body.get("sid"), None)

    def _sign(self, body: dict) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
        mac = hmac.new(self.secret, raw.encode(), hashlib.sha256).hexdigest()
        return f"{raw}.{mac}"

    def _body(self, cookie: str | None) -> dict | None:
        if not cookie or "." not in cookie:
            return None
        raw, mac = cookie.rsplit(".", 1)
        if not _same(mac, hmac.new(self.secret, raw.encode(), hashlib.sha256).hexdigest()):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(raw.encode()))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def read(self, cookie: str | None) -> tuple[User, str] | None:
        """(user, csrf token) for a valid, unexpired, not logged-out cookie of a user still in the file; else None."""
        body = self._body(cookie)
        if body is None or body.get("sid") not in self.live:
            return None
        u = self.users.get(body.get("u"))
        if not u or body.get("exp", 0) < time.time():
            return None
        return User(body["u"], u["role"], u.get("bank")), body["csrf"]

    def login_token(self) -> str:
        """A signed token for the login form (double-submit: the same value rides in a cookie)."""
        return self._sign({"login": secrets.token_urlsafe(16), "exp": int(time.time()) + 3600})

    def valid_login_token(self, form_value: str | None, cookie_value: str | None) -> bool:
        if not form_value or not cookie_value or not _same(form_value, cookie_value):
            return False
        raw, _, mac = form_value.rpartition(".")
        return bool(raw) and _same(mac, hmac.new(self.secret, raw.encode(), hashlib.sha256).hexdigest())


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings from a request: as bytes, so a non-ASCII value is simply unequal (hmac's
    comparison of str raises on it, which was a 500)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))
