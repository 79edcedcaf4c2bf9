"""Endpoint secrets at rest: encrypted under MAILER_SECRET_KEY (and the old keys, to read).

A database backup alone then lets nobody sign messages a receiver would
take for ours. Rotation (MAILER_SECRET_KEY_OLD) keeps stored secrets readable.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, MultiFernet

from mailer.tokens import Keys


def _fernet(keys: Keys) -> MultiFernet:
    listed = [keys] if isinstance(keys, str) else list(keys)
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(hashlib.sha256(f"mailer.webhook:{key}".encode()).digest())
            )
            for key in listed
        ]
    )


def seal(keys: Keys, secret: str) -> str:
    return _fernet(keys).encrypt(secret.encode()).decode()


def unseal(keys: Keys, sealed: str) -> str:
    """The secret; cryptography's InvalidToken when no configured key opens it."""
    return _fernet(keys).decrypt(sealed.encode()).decode()
