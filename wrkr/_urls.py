"""Keep passwords out of logs and error messages: one place for every backend."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def redact(url: str) -> str:
    """Return `url` with any password replaced by `***`, for logs and error messages.

    The host part is kept as written (never parsed), so multi-host URLs survive.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def scrub(text: str, url: str) -> str:
    """Return `text` with the password of `url` replaced by `***` (drivers quote it).

    Both spellings go: as written in the URL and percent-decoded, as a driver may show it.
    """
    password = urlsplit(url).password
    for spelling in {password, unquote(password)} if password else ():
        text = text.replace(spelling, "***")
    return text
