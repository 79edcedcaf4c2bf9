"""The time zones a person picks from: one per place, grouped by region, named by city and country.

`zoneinfo.available_timezones()` offers about 600 names, a third of them old
aliases (`US/Eastern`, `GB`, `Asia/Calcutta`) that nobody should have to
scroll past. The tz database's own zone.tab lists the zones people live in,
each with its country; its links (tzdata.zi) map every alias to one of them,
so a zone stored earlier, or the one a browser reports, still finds its
entry in the list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

UTC_NAME = "UTC"


@dataclass(frozen=True, slots=True)
class Zone:
    name: str  # the IANA name stored, e.g. America/Argentina/Buenos_Aires
    region: str  # Africa, America, ..., or UTC
    label: str  # "Buenos Aires, Argentina"


def _tz_file(name: str) -> list[str]:
    text = resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@functools.cache
def zones() -> tuple[Zone, ...]:
    """Every zone of the picker, by region, then by label."""
    countries = dict(line.split("\t")[:2] for line in _tz_file("iso3166.tab"))
    found = []
    for line in _tz_file("zone.tab"):
        code, _coordinates, name = line.split("\t")[:3]
        region, _, place = name.partition("/")
        city = place.replace("_", " ").replace("/", " / ")
        found.append(Zone(name, region, f"{city}, {countries.get(code, code)}"))
    found.sort(key=lambda zone: (zone.region, zone.label))
    return (Zone(UTC_NAME, UTC_NAME, "UTC"), *found)


@functools.cache
def names() -> frozenset[str]:
    return frozenset(zone.name for zone in zones())


@functools.cache
def aliases() -> dict[str, str]:
    """Every other name of a picker zone (old aliases, merged zones), to that zone."""
    links: dict[str, str] = {}
    for line in _tz_file("tzdata.zi"):
        if line.startswith("L "):
            _, target, alias = line.split()[:3]
            links[alias] = target
    known = names()
    result = {}
    for alias, target in links.items():
        for _ in range(4):  # a link may point at another link
            if target in known or target not in links:
                break
            target = links[target]
        if alias not in known and target in known:
            result[alias] = target
    for name in (
        "Etc/UTC",
        "Etc/UCT",
        "Etc/Universal",
        "Etc/Zulu",
        "UCT",
        "Universal",
        "Zulu",
        "Etc/GMT",
        "GMT",
        "Etc/Greenwich",
        "Greenwich",
    ):
        result.setdefault(name, UTC_NAME)
    return result


def canonical(name: str) -> str:
    """The picker's zone for `name` (itself, or what an alias stands for); "" if unknown."""
    if name in names():
        return name
    return aliases().get(name, "")


def grouped(now: datetime) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(region, [(name, "Berlin, Germany (UTC+01:00)"), ...]), ...] for an <optgroup> list."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for zone in zones():
        offset = now.astimezone(ZoneInfo(zone.name)).strftime("%z")
        label = zone.label
        if zone.name != UTC_NAME:
            label += f" (UTC{offset[:3]}:{offset[3:]})"
        groups.setdefault(zone.region, []).append((zone.name, label))
    return list(groups.items())
