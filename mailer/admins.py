"""Admin console accounts (argon2 password hashes) and the audit log of what they do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import console_sessions
from mailer.errors import MailerError
from mailer.models import AdminRole, AdminUser, AuditEntry

# argon2-cffi's defaults follow RFC 9106's second recommendation; when a later
# release raises them, check_needs_rehash tells us at the next login.
HASHER = PasswordHasher()
MIN_PASSWORD, MAX_PASSWORD = 12, 1024  # the upper bound keeps hashing a request cheap
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
# An address anywhere in a text: its local part is what names a person.
ADDRESS_IN_TEXT = re.compile(r"[^\s@<>\"'(),;:]+@(?=[^\s@<>]+\.[^\s@<>]+)")
# Hashed once: a login for an unknown address verifies against it, so it costs
# as long as a wrong password and the timing does not tell which accounts exist.
_DUMMY_HASH = HASHER.hash("not a password of anybody's")


class InvalidAccount(MailerError):
    """An account cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Account:
    """What the console needs to know of a signed-in person; never the hash itself."""

    id: int
    email: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    two_factor: bool  # TOTP sign-in is on (mailer.two_factor)

    @property
    def is_admin(self) -> bool:
        return self.role == AdminRole.ADMIN


def _account(user: AdminUser) -> Account:
    return Account(
        id=user.id,
        email=user.email,
        role=user.role,
        active=user.active,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        two_factor=user.totp_enabled_at is not None,
    )


def normalise_email(raw: str) -> str:
    """A login name: the address lower-cased. It is never mailed, so only its shape is checked."""
    email = raw.strip().lower()
    if len(email) > 320 or not EMAIL.match(email):
        raise InvalidAccount(f"{raw[:80]!r} is not an email address")
    return email


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidAccount(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidAccount(f"the password must have at most {MAX_PASSWORD} characters")
    return password


def create_admin(session: Session, email: str, password: str, role: str, now: datetime) -> int:
    """Store a new account; return its id. Raises InvalidAccount."""
    email = normalise_email(email)
    if role not in set(AdminRole):
        raise InvalidAccount(f"role must be editor or admin, not {role!r}")
    check_password_rules(password)
    if session.scalar(select(AdminUser.id).where(AdminUser.email == email)) is not None:
        raise InvalidAccount(f"there is already an account for {email}")
    user = AdminUser(
        email=email, password_hash=HASHER.hash(password), role=role, active=True, created_at=now
    )
    session.add(user)
    session.flush()
    return user.id


def _verified(user: AdminUser | None, password: str) -> bool:
    try:
        return HASHER.verify(user.password_hash if user else _DUMMY_HASH, password) and bool(user)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, email: str, password: str, now: datetime) -> Account | None:
    """The account if the password is right and it is active; None for every other case."""
    try:
        email = normalise_email(email)
    except InvalidAccount:
        email = ""
    user = session.scalar(
        select(AdminUser).where(AdminUser.email == email, AdminUser.active.is_(True))
    )
    # _verified hashes for an unknown address too: the time tells no one which accounts exist.
    if len(password) > MAX_PASSWORD or not _verified(user, password) or user is None:
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)  # the parameters were raised since
    user.last_login_at = now
    session.flush()
    return _account(user)


def password_matches(session: Session, email: str, password: str) -> bool:
    """Whether `password` is the account's, changing nothing (no login is recorded)."""
    user = session.scalar(select(AdminUser).where(AdminUser.email == normalise_email(email)))
    return _verified(user, password)


def set_password(session: Session, admin_id: int, password: str) -> None:
    """Replace the password; every session of the account ends at once."""
    user = _get(session, admin_id)
    user.password_hash = HASHER.hash(check_password_rules(password))
    console_sessions.end_all(session, admin_id)
    session.flush()


def _get(session: Session, admin_id: int) -> AdminUser:
    user = session.get(AdminUser, admin_id)
    if user is None:
        raise InvalidAccount(f"no account with id {admin_id}")
    return user


def get(session: Session, admin_id: int) -> Account | None:
    user = session.get(AdminUser, admin_id)
    return _account(user) if user else None


def find(session: Session, email: str) -> Account | None:
    user = session.scalar(select(AdminUser).where(AdminUser.email == normalise_email(email)))
    return _account(user) if user else None


def list_admins(session: Session) -> list[Account]:
    """Every account, active ones first, then by address."""
    users = session.scalars(select(AdminUser).order_by(AdminUser.active.desc(), AdminUser.email))
    return [_account(user) for user in users]


def active_admin_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AdminUser)
            .where(AdminUser.active.is_(True), AdminUser.role == AdminRole.ADMIN)
        )
        or 0
    )


def set_active(session: Session, admin_id: int, *, active: bool) -> Account:
    """Deactivate (sessions end at once, the row and its audit trail stay) or reactivate."""
    user = _get(session, admin_id)
    last_admin = user.role == AdminRole.ADMIN and active_admin_count(session) <= 1
    if not active and user.active and last_admin:
        raise InvalidAccount("the last active admin cannot be deactivated")
    user.active = active
    if not active:
        console_sessions.end_all(session, admin_id)
    session.flush()
    return _account(user)


def deactivate(session: Session, admin_id: int) -> Account:
    return set_active(session, admin_id, active=False)


def audit(
    session: Session,
    actor: Account | str,
    action: str,
    target: str = "",
    detail: str = "",
    *,
    now: datetime,
) -> None:
    """Record one action. `actor` is the account, or a name for who has none ("cli").

    The log outlives every erasure, so it names subscribers by id, and any
    address in `detail` (a relay's answer, a typed search) loses its local part.
    """
    session.add(
        AuditEntry(
            at=now,
            admin_id=actor.id if isinstance(actor, Account) else None,
            actor=(actor.email if isinstance(actor, Account) else actor)[:320],
            action=action[:60],
            target=target[:200],
            detail=without_addresses(detail)[:2000],
        )
    )
    session.flush()


def without_addresses(text: str) -> str:
    """`text` with every address's local part cut: "to ann@example.org" -> "to …@example.org"."""
    return ADDRESS_IN_TEXT.sub("…@", text)


def known_account(session: Session, typed: str) -> str:
    """What a failed login is audited as: the account it names, never whatever was typed.

    A typed name may be a stranger's address, or a password typed into the wrong field.
    """
    try:
        email = normalise_email(typed)
    except InvalidAccount:
        return "(not an account)"
    found = session.scalar(select(AdminUser.email).where(AdminUser.email == email))
    return found or "(not an account)"


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


def audit_log(
    session: Session, *, before_id: int | None = None, action: str = "", limit: int = 100
) -> list[AuditRow]:
    """Newest first, `limit` at a time; `before_id` pages on (keyset), `action` filters by
    prefix ("campaign" for every campaign action)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    return [
        AuditRow(row.id, row.at, row.actor, row.action, row.target, row.detail)
        for row in session.scalars(query)
    ]
