"""Two-factor sign-in for the console: TOTP (RFC 6238) and one-time recovery codes.

The TOTP secret is stored encrypted (Fernet) under a key derived from
MAILER_SECRET_KEY, and decrypts with MAILER_SECRET_KEY_OLD too during a
rotation; a code is accepted once (the last time step used is kept) and one
step either side of now (clock drift). Recovery codes are shown once and
kept as argon2 hashes; each works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer import console_sessions
from mailer.errors import MailerError
from mailer.models import AdminUser, RecoveryCode
from mailer.tokens import Keys

RECOVERY_CODES = 10
STEP = 30  # seconds: what every authenticator app uses
# Recovery codes carry 60 random bits: a light argon2 is plenty, and ten of
# them can be tried within one request.
CODE_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class TwoFactorError(MailerError):
    """A code was wrong, or two-factor sign-in is not in the state the action needs."""


def _fernet(keys: Keys) -> MultiFernet:
    listed = [keys] if isinstance(keys, str) else list(keys)
    return MultiFernet(
        [
            Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"mailer.totp:{key}".encode()).digest()))
            for key in listed
        ]
    )


def _secret(keys: Keys, user: AdminUser) -> str:
    if not user.totp_secret:
        raise TwoFactorError("two-factor sign-in is not set up")
    try:
        return _fernet(keys).decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        raise TwoFactorError(
            "the stored secret does not decrypt with the configured keys"
        ) from None


def _user(session: Session, admin_id: int) -> AdminUser:
    return session.get_one(AdminUser, admin_id, with_for_update=True)


def begin(session: Session, admin_id: int, keys: Keys) -> str:
    """A new secret for the account, stored but not yet on; returns it for the QR code."""
    user = _user(session, admin_id)
    if user.totp_enabled_at is not None:
        raise TwoFactorError("two-factor sign-in is on already; turn it off first")
    secret = pyotp.random_base32()
    user.totp_secret = _fernet(keys).encrypt(secret.encode()).decode()
    session.flush()
    return secret


def pending_secret(session: Session, admin_id: int, keys: Keys) -> str | None:
    """The secret of an enrolment begun but not confirmed, to show its QR code again."""
    user = session.get_one(AdminUser, admin_id)
    if user.totp_enabled_at is not None or not user.totp_secret:
        return None
    return _secret(keys, user)


def qr_svg(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI as an inline SVG QR code (no script, no image request)."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)
    return segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator")


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    code = "".join(code.split())
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def _use_code(keys: Keys, user: AdminUser, code: str, now: datetime) -> bool:
    step = _matching_step(_secret(keys, user), code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False  # wrong, or replayed within its window
    user.totp_last_step = step
    return True


def confirm(session: Session, admin_id: int, keys: Keys, code: str, *, now: datetime) -> list[str]:
    """Turn two-factor sign-in on with a first code from the app; return the recovery codes."""
    user = _user(session, admin_id)
    if user.totp_enabled_at is not None:
        raise TwoFactorError("two-factor sign-in is on already")
    if not _use_code(keys, user, code, now):
        raise TwoFactorError("that code is not the one your app shows now; try the next one")
    user.totp_enabled_at = now
    codes = new_recovery_codes(session, admin_id)
    console_sessions.end_all(session, admin_id)  # sessions from before 2FA end
    session.flush()
    return codes


def new_recovery_codes(session: Session, admin_id: int) -> list[str]:
    """Replace the account's recovery codes; return the new ones (shown once, kept hashed)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.admin_id == admin_id))
    raw = [secrets.token_hex(8)[:15] for _ in range(RECOVERY_CODES)]  # 60 bits each
    session.add_all(
        RecoveryCode(admin_id=admin_id, code_hash=CODE_HASHER.hash(code)) for code in raw
    )
    session.flush()
    return [f"{code[:5]}-{code[5:10]}-{code[10:]}" for code in raw]


def _use_recovery_code(session: Session, admin_id: int, code: str, now: datetime) -> bool:
    typed = "".join(code.lower().split()).replace("-", "")
    if len(typed) != 15:
        return False
    unused = session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.admin_id == admin_id, RecoveryCode.used_at.is_(None)
        )
    )
    for row in unused:
        try:
            CODE_HASHER.verify(row.code_hash, typed)
        except (VerificationError, InvalidHashError):
            continue
        row.used_at = now
        return True
    return False


def verify(session: Session, admin_id: int, keys: Keys, code: str, *, now: datetime) -> bool:
    """Whether `code` is the app's current code or an unused recovery code (then spent)."""
    user = _user(session, admin_id)
    if user.totp_enabled_at is None:
        return False
    ok = _use_code(keys, user, code, now) or _use_recovery_code(session, admin_id, code, now)
    session.flush()
    return ok


def disable(session: Session, admin_id: int) -> None:
    """Two-factor sign-in off, secret and recovery codes gone, every session ended."""
    user = _user(session, admin_id)
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = None, None, None
    session.execute(delete(RecoveryCode).where(RecoveryCode.admin_id == admin_id))
    console_sessions.end_all(session, admin_id)
    session.flush()


def unused_codes(session: Session, admin_id: int) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.admin_id == admin_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
