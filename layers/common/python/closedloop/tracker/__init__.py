"""The first-party JavaScript tracker, and the demo site that shows it at work.

The collect function serves :func:`tracker_script` as-is at ``GET /t.js``. ``t.js`` is ``t.src.js``
minified (see ``docs/tracker.md``); both ship in the layer, only ``t.js`` is served.
"""

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = [
    "DEMO_SITE_CONTENT_TYPES",
    "TRACKER_CONTENT_TYPE",
    "demo_site_file",
    "tracker_script",
    "tracker_snippet",
]

TRACKER_CONTENT_TYPE = "text/javascript; charset=utf-8"
DEMO_SITE_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8"}


@cache
def tracker_script() -> bytes:
    """Return the tracker served at ``GET /t.js`` (read once per process).

    Returns
    -------
    bytes
        The minified tracker, UTF-8 JavaScript; serve it with :data:`TRACKER_CONTENT_TYPE`.
    """
    return files(__name__).joinpath("t.js").read_bytes()


# Defines closedloop(...) at once, so the page may call it before t.js has loaded (docs/tracker.md).
_STUB = (
    "<script>window.closedloop=window.closedloop||"
    "function(){(closedloop.q=closedloop.q||[]).push(arguments)};</script>"
)


def tracker_snippet(api_url: str, *, cookie_domain: str | None = None) -> str:
    """Return the two ``<script>`` tags to paste into the ``<head>`` of every page.

    Parameters
    ----------
    api_url
        The API's base URL, without a trailing slash; ``t.js`` takes the API's address from its own
        ``src``. A CDK token works too (the stack prints the snippet as an output).
    cookie_domain
        The visitor cookie's domain, such as ``".example.com"`` to share it between ``www.`` and
        ``app.``; it must be the page's host or a parent of it. ``None``: the page's host.

    Returns
    -------
    str
        The stub and the asynchronous loader, on two lines.
    """
    domain = f' data-domain="{cookie_domain}"' if cookie_domain else ""
    loader = (
        f'<script async src="{api_url.rstrip("/")}/t.js" data-honor-gpc="true" data-honor-dnt="false"'
        f"{domain}></script>"
    )
    return f"{_STUB}\n{loader}"


def _demo_site() -> Traversable:
    return files("closedloop").joinpath("local", "site")


def demo_site_file(name: str, api_origin: str = "") -> tuple[bytes, str]:
    """Return one file of the demo site (``local/site``) and its content type.

    The pages load ``/t.js`` and post their form to ``/identify``: as they are, they work when the site
    is served by the API's own origin (for instance under ``/site/``). With ``api_origin`` (such as
    ``"http://127.0.0.1:3000"``) those two URLs are made absolute, for a site served from another origin.

    Parameters
    ----------
    name
        A file name of the site, such as ``"index.html"``; no directories.
    api_origin
        The scheme, host and port of the API, without a trailing slash; empty for the same origin.

    Returns
    -------
    tuple[bytes, str]
        The file's bytes and its content type.

    Raises
    ------
    FileNotFoundError
        If the site has no such file.
    """
    suffix = name[name.rfind(".") :] if "." in name else ""
    path = _demo_site().joinpath(name)
    if "/" in name or "\\" in name or suffix not in DEMO_SITE_CONTENT_TYPES or not path.is_file():
        raise FileNotFoundError(name)
    body = path.read_bytes()
    if api_origin and suffix == ".html":
        origin = api_origin.rstrip("/").encode()
        body = body.replace(b'src="/t.js"', b'src="' + origin + b'/t.js"')
        body = body.replace(b'action="/identify"', b'action="' + origin + b'/identify"')
    return body, DEMO_SITE_CONTENT_TYPES[suffix]
