"""Links: complete, secure, no placeholder left, distinct texts; and (--links) alive."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from newsletter.audience.addresses import normalize_address
from newsletter.checks import Finding, Places, Subject
from newsletter.issue import IssueFile
from newsletter.settings import Settings


def check(s: Subject) -> None:
    texts: dict[str, set[str]] = defaultdict(set)
    # Links to our own web service come from a setting: said once, below, not per link.
    ours = s.settings.public_url("")
    if urlsplit(ours).scheme != "https":
        s.add(
            "link.base-url",
            f"the links to the web service start with {ours} (not https): fine to try "
            "things on this machine; set NEWSLETTER_BASE_URL to the public https address "
            "before a real send",
        )
    for href, text in s.parsed.links:
        where = s.places.of_url(href)
        if "NLX" in href or "{{" in href or "%7B%7B" in href.upper() or "}}" in href:
            s.add("link.placeholder", f"the link '{href}' still holds a placeholder", where)
        elif href.startswith("mailto:"):
            target = href.removeprefix("mailto:").split("?", 1)[0]
            try:
                normalize_address(target)
            except ValueError as exc:
                s.add("link.mailto", f"'{href}' is not a valid address: {exc}", where)
        elif not href.strip() or not urlsplit(href).scheme or not urlsplit(href).netloc:
            s.add(
                "link.empty",
                f"the link '{href}' is empty or relative; write the full https:// address",
                where,
            )
        elif urlsplit(href).scheme != "https" and not href.startswith(ours):
            s.add("link.insecure", f"the link {href} is not https", where)
        if text:
            texts[text.lower()].add(href)
    for text, hrefs in sorted(texts.items()):
        if len(hrefs) > 1:
            s.add(
                "link.duplicate-text",
                f"the link text '{text}' points to {len(hrefs)} different URLs; "
                "make each one say where it goes",
            )


def answers(url: str, *, timeout: float, user_agent: str) -> str | None:
    """None when url answers without an error; otherwise what went wrong. HEAD first,
    then GET where a server refuses HEAD; no retries."""
    import urllib.error
    import urllib.request

    for method in ("HEAD", "GET"):
        request = urllib.request.Request(url, method=method, headers={"User-Agent": user_agent})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return None if response.status < 400 else f"answered {response.status}"
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (405, 501):
                continue  # some servers refuse HEAD; ask once with GET
            return f"answered {exc.code} {exc.reason}"
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"did not answer ({reason})"
    return None


def unanswered(
    urls: list[str], *, timeout: float = 5.0, workers: int = 8, user_agent: str
) -> dict[str, str]:
    """Each of urls that does not answer, fetched concurrently and once, with why."""
    import concurrent.futures
    import functools

    unique = list(dict.fromkeys(urls))
    probe = functools.partial(answers, timeout=timeout, user_agent=user_agent)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = zip(unique, pool.map(probe, unique), strict=True)
        return {url: problem for url, problem in results if problem}


def check_links(
    issue_file: IssueFile, *, timeout: float = 5.0, workers: int = 8, user_agent: str
) -> list[Finding]:
    """Fetch every link written in the issue, concurrently, once each, no retries."""
    places = Places(issue_file)
    urls = [u for u in places.urls if urlsplit(u).scheme in ("http", "https")]
    problems = unanswered(urls, timeout=timeout, workers=workers, user_agent=user_agent)
    return [
        Finding("link.broken", "error", f"{url} {problem}", **places.of_url(url))
        for url, problem in problems.items()
    ]


def user_agent(settings: Settings) -> str:
    from newsletter import __version__

    return f"newsletter-link-check/{__version__} (+{settings.base_url})"
