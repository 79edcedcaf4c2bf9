"""axe-core in the browser tests: a pinned copy (axe-playwright-python 0.1.8 bundles axe 4.12.1).

The script is evaluated through the DevTools protocol, so the pages' CSP
(script-src 'self') does not stop it, and nothing of it ships with mailer.
"""

from __future__ import annotations

import json

from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Frame, Page

BLOCKING = {"serious", "critical"}


def violations(target: Page | Frame) -> list[dict]:
    """axe's violations on the page (or frame) as it is now, every impact."""
    if not target.evaluate("typeof window.axe !== 'undefined'"):
        target.evaluate(AXE_SCRIPT)
    result = target.evaluate("axe.run(document, {resultTypes: ['violations'], iframes: false})")
    return result["violations"]


def describe(found: list[dict]) -> str:
    lines = []
    for violation in found:
        targets = [node["target"] for node in violation["nodes"][:5]]
        lines.append(f"{violation['id']} ({violation['impact']}): {json.dumps(targets)}")
    return "\n".join(lines)


def assert_accessible(target: Page | Frame, where: str) -> None:
    """No serious or critical violation on the page as it is now."""
    blocking = [v for v in violations(target) if v["impact"] in BLOCKING]
    assert not blocking, f"axe on {where}:\n{describe(blocking)}"
