"""The snippet the stack prints is the one docs/tracker.md tells the web team to paste."""

from __future__ import annotations

from pathlib import Path

from closedloop.tracker import tracker_snippet

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tracker.md"


def test_the_documented_snippet_is_the_generated_one() -> None:
    assert tracker_snippet("https://API_ORIGIN", cookie_domain=".example.com") in DOCS.read_text()


def test_the_snippet_loads_t_js_from_the_api_without_a_cookie_domain_by_default() -> None:
    stub, loader = tracker_snippet("https://abc.execute-api.us-east-1.amazonaws.com/").splitlines()
    assert stub.startswith("<script>window.closedloop=") and stub.endswith("</script>")
    assert loader == (
        '<script async src="https://abc.execute-api.us-east-1.amazonaws.com/t.js" '
        'data-honor-gpc="true" data-honor-dnt="false"></script>'
    )
