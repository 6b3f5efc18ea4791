"""Database credentials: taken from the environment only, and masked wherever a URL is recorded.

A database URL may carry a password (`postgresql://user:PW@host/db`). rbench never reads one from
a file: a sweep spec's `storage:` must not hold a password (the driver's libpq reads PGPASSWORD),
or the whole URL comes from the environment variable RBENCH_OPTUNA_STORAGE. Whatever is written
down (sweep.json, Tune's saved searcher, MLflow params and config artifacts, the console) holds
the masked form `postgresql://user:***@host/db`; `unmask` turns it back into the real URL from the
environment of the process that connects (a trial actor on another node reads its own).
"""

from __future__ import annotations

import os
from typing import Any

STORAGE_ENV = "RBENCH_OPTUNA_STORAGE"  # the Optuna storage URL, password included
MASK = "***"


def _parse(url: str):
    """A SQLAlchemy URL, or None for what is not one (a path, a plain value, an http URL)."""
    if "://" not in url or url.startswith(("http://", "https://", "file://")):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def has_password(url: str) -> bool:
    """A database URL with a password, or an http(s) URL with user:password@."""
    if url.startswith(("http://", "https://")):
        netloc = url.split("://", 1)[1].split("/", 1)[0]
        return "@" in netloc and ":" in netloc.split("@", 1)[0]
    u = _parse(url)
    return u is not None and u.password not in (None, "", MASK)


def mask(url: str) -> str:
    """The URL with its password replaced by *** (anything else unchanged)."""
    if url.startswith(("http://", "https://")) and has_password(url):
        scheme, rest = url.split("://", 1)
        cred, host = rest.split("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:{MASK}@{host}"
    u = _parse(url)
    if u is None or not u.password:
        return url
    return u.render_as_string(hide_password=True)


def redact(value: Any) -> Any:
    """`value` (a string, or mappings / lists of them) with every URL password masked."""
    if isinstance(value, str):
        return mask(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


def unmask(url: str) -> str:
    """The real URL behind a masked one, from RBENCH_OPTUNA_STORAGE (whose masked form must be
    `url`: the same database). An unmasked URL is returned as it is."""
    u = _parse(url)
    if u is None or u.password != MASK:
        return url
    from harness.errors import UserError

    real = os.environ.get(STORAGE_ENV)
    if not real:
        raise UserError(f"the Optuna storage {url} needs its password: set {STORAGE_ENV} to its full URL")
    if mask(real) != url:
        raise UserError(f"{STORAGE_ENV} ({mask(real)}) is not the storage this sweep uses ({url})")
    return real
