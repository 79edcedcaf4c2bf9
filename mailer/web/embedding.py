"""What other sites load from us: the one-line signup script (embed.js) and the look (theme.css).

embed.js inserts the signup iframe where its <script> tag stands and keeps
the frame as tall as the form inside it: the frame reports its height with
postMessage and the script believes only messages from our origin and that
frame. theme.css carries the site's colours and font (site settings), or the
host page's own (data attributes of the script, query parameters of the
plain iframe), as a stylesheet from our origin: the pages' CSP allows no
inline style.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, request, url_for

from mailer.site import SiteSettings, contrast, darker
from mailer.web.site_context import site_settings

bp = Blueprint("embedding", __name__)
STATIC = Path(__file__).resolve().parent.parent / "static"
CROSS_ORIGIN = {"embedding.embed_script", "embedding.theme"}
COLOUR = re.compile(r"#?[0-9a-fA-F]{6}")
# A font list such as `Georgia, "Times New Roman", serif`: letters, digits,
# spaces, commas, quotes and hyphens only, so nothing can close the rule.
FONT = re.compile(r"[A-Za-z0-9 ,\"'-]{1,120}")
DEFAULT_FONT = '-apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif'
INK, PAPER = "#1f2933", "#ffffff"


def cross_origin_headers(response: Response) -> None:
    """Any site may load these two files (they hold nothing personal)."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"


@bp.get("/embed.js")
def embed_script() -> Response:
    response = Response((STATIC / "embed.js").read_bytes(), mimetype="text/javascript")
    # An hour: a fix reaches every host page soon, yet readers do not refetch it per page.
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _colour(name: str, fallback: str) -> str:
    value = request.values.get(name, "")
    if COLOUR.fullmatch(value):
        return "#" + value.removeprefix("#").lower()
    return fallback


def _readable_on(background: str) -> str:
    """White or ink, whichever reads better on `background`."""
    return PAPER if contrast(PAPER, background) >= contrast(INK, background) else INK


def theme_css(site: SiteSettings) -> str:
    """The site's colours and font, overridden by the request's accent, text, background, font."""
    accent = _colour("accent", site.brand_colour)
    ink = _colour("text", INK)
    paper = _colour("background", PAPER)
    font = request.values.get("font", "")
    font = font if FONT.fullmatch(font) else DEFAULT_FONT
    # Links in the accent only where they can be read on the background (WCAG AA).
    link = accent if contrast(accent, paper) >= 4.5 else ink
    muted = "#52606d" if (ink, paper) == (INK, PAPER) else ink  # host colours: their text
    return (
        ":root { "
        f"--brand: {accent}; --brand-dark: {darker(accent)}; --on-brand: {_readable_on(accent)}; "
        f"--ink: {ink}; --paper: {paper}; --link: {link}; --muted: {muted}; "
        f"--font: {font}; }}\n"
    )


@bp.get("/theme.css")
def theme() -> Response:
    response = Response(theme_css(site_settings()), mimetype="text/css")
    # Pages link it with ?v=<settings version>: a save changes the URL.
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def embed_query() -> dict[str, str]:
    """The look parameters of this request, passed on to theme.css (validated there)."""
    return {
        name: request.values[name]
        for name in ("accent", "text", "background", "font")
        if request.values.get(name)
    }


def theme_url(*, embedded: bool = False) -> str:
    """theme.css for this page: versioned by the settings, with the host's look when embedded."""
    return url_for(
        "embedding.theme", v=site_settings().version, **(embed_query() if embedded else {})
    )
