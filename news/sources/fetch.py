"""One GET of a source's API, with a timeout and an error that says what to do instead."""

from __future__ import annotations

import requests

from news.feeds import USER_AGENT
from news.sources.base import FeatureSource


class SourceFetchError(RuntimeError):
    """The API could not be read (network, HTTP status); nothing was stored."""


def fetch_payload(source: FeatureSource, session: requests.Session,
                  url: str | None = None) -> bytes:
    """The raw response body of ``source``'s API (or of ``url``, a mirror or test server).

    Raises SourceFetchError for a network failure, a timeout or a non-2xx status."""
    url = url or source.url
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    offline = (f"save a response where the network allows and load it with `quantum news "
               f"sources import --source {source.name} --file SAVED.json`")
    try:
        response = session.get(url, headers=headers, timeout=source.config.timeout_s)
    except requests.RequestException as exc:
        raise SourceFetchError(
            f"{source.name}: cannot fetch {url} ({type(exc).__name__}: {exc}); check the "
            f"network and retry, or {offline}"
        ) from exc
    status = response.status_code
    if not 200 <= status < 300:
        reason = getattr(response, "reason", "") or ""
        raise SourceFetchError(
            f"{source.name}: HTTP {' '.join(filter(None, (str(status), reason)))} from {url}; "
            f"retry later, or {offline}"
        )
    return response.content
