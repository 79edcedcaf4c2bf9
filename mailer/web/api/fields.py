"""Field types the API's models share: text a database can store, times it can hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
)

# PostgreSQL cannot store NUL in text; anything else Unicode allows is a string.
NO_NUL = r"^[^\x00]*$"
# A name goes into mail headers: no line breaks or other control characters.
NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


def _to_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years a time can be stored for") from None


def text(
    max_length: int, *, description: str = "", pattern: str = NO_NUL, **extra: object
) -> object:
    """A string field of at most `max_length` characters, without NUL."""
    return Field(max_length=max_length, pattern=pattern, description=description, **extra)


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    Field(description="ISO 8601 with a time zone offset; answered in UTC"),
]


def _iso_utc(moment: datetime) -> str:
    # A time read back without its zone (SQLite) was stored in UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


# What answers carry: ISO 8601 in UTC, "+00:00" as the API always wrote it.
UtcOut = Annotated[
    datetime,
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
    Field(description="ISO 8601, UTC"),
]


def _integral(value: object) -> object:
    # JSON Schema counts 30.0 as an integer; a string is not one.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(low: int, high: int) -> Any:
    """An integer from `low` to `high` as JSON Schema has it: 30 or 30.0, never "30" or true."""
    return Annotated[int, Strict(), Field(ge=low, le=high), BeforeValidator(_integral)]


# Ids are PostgreSQL integers: a larger number names nothing and must not reach a query.
MAX_ID = 2**31 - 1
Id = whole_number(1, MAX_ID)


def _no_default(schema: dict[str, object]) -> None:
    schema.pop("default", None)


def optional_text(max_length: int, *, description: str = "", **extra: object) -> object:
    """A string that may be left out, but is never null or empty when given."""
    return text(
        max_length,
        default=None,
        min_length=1,
        description=description,
        json_schema_extra=_no_default,
        **extra,
    )
