"""Source lists: which traffic sources are search engines, social networks, video or shopping sites.

The GA4 channel rules ask "is this source on the list of search sites?" (and of social, video and shopping
sites). GA4's lists are Google's: a downloadable file of ~800 sources, each with a category
(``SOURCE_CATEGORY_SEARCH`` / ``_SOCIAL`` / ``_VIDEO`` / ``_SHOPPING``), linked from the "[GA4] Default
channel group" help page. A copy of it ships as ``closedloop/channels/data/ga4_source_categories.csv``
(provenance in ``ga4_source_categories.source.json``) and is the base of the packaged lists. On top of it
come closedloop's additions (the JSON files next to it: source names for utm_source aliases, domains
Google's file lacks such as ``x.com`` or ``bsky.app``, country domains, Android package ids) and the
user's own extensions, in code (:meth:`SourceLists.extended`), as a JSON file of the same shape
(:meth:`SourceLists.extended_from_file`) or as a newer download of Google's file
(:meth:`SourceLists.extended_from_google_file`).

Each list maps a source *name* (what reports show for organic search referrals, e.g. ``"google"``) to
entries of two kinds:

- a name without a dot (``"fb"``, ``"google ads"``): matches a ``utm_source`` equal to it;
- a domain (``"linkedin.com"``): matches that host and all its subdomains (``www.linkedin.com``).
  ``"google.*"`` matches ``google`` under any country ending
  (``google.de``, ``google.co.uk``, ``www.google.com.br``). Android package ids, which Android apps send
  as ``android-app://<package>/`` referrers, are written and matched like domains.

For a host, the most specific entry decides, as an exact entry of Google's file does in GA4:
``answers.yahoo.com`` is social although ``yahoo.*`` is a search engine. Hosts on the exclusion list
(webmail, documents, consoles of the same companies, e.g. ``mail.google.com``) and their subdomains match
no list, unless a more specific entry names them.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "GOOGLE_LIST_FILE",
    "GoogleSourceCategory",
    "SourceCategory",
    "SourceListDocument",
    "SourceLists",
    "read_google_source_categories",
]

GOOGLE_LIST_FILE = "ga4_source_categories.csv"
"""The packaged copy of Google's source-category list, in ``closedloop/channels/data/``."""


class SourceCategory(StrEnum):
    """The kinds of source the GA4 channel rules look up by list."""

    SEARCH = "search"
    SOCIAL = "social"
    VIDEO = "video"
    SHOPPING = "shopping"

    @property
    def ga4_name(self) -> str:
        """The category's name in Google's list, e.g. ``"SOURCE_CATEGORY_SEARCH"``."""
        return f"{_GA4_PREFIX}{self.value.upper()}"

    @classmethod
    def from_ga4_name(cls, value: str) -> SourceCategory:
        """The category named ``value`` in Google's list (``"SOURCE_CATEGORY_SOCIAL"`` is ``SOCIAL``).

        Raises
        ------
        ValueError
            ``value`` is not one of Google's four source categories.
        """
        name = value.strip().upper()
        if name.startswith(_GA4_PREFIX):
            try:
                return cls(name.removeprefix(_GA4_PREFIX).lower())
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a GA4 source category")


_GA4_PREFIX = "SOURCE_CATEGORY_"


class GoogleSourceCategory(NamedTuple):
    """One row of Google's source-category list: a source and the list GA4 puts it on."""

    source: str
    category: SourceCategory


# A name has no dot; a domain is dot-separated labels, optionally ending in ".*" (any country ending).
_NAME = re.compile(r"^[\w][\w &+-]*$")
_DOMAIN = re.compile(r"^(?:[a-z0-9_-]+\.)+(?:[a-z0-9-]+|\*)$")
_WILDCARD = re.compile(r"^[a-z0-9_-]+\.\*$")
_HOST = re.compile(r"^(?:[a-z0-9_-]+\.)*[a-z0-9_-]+$")

# Second-level labels used under country codes (co.uk, com.br, ne.jp, gob.mx, ...); "name.*" accepts
# one of these followed by a two-letter country code, or a single 2-3 letter ending.
_SECOND_LEVEL_LABELS = frozenset({"co", "com", "net", "org", "ac", "ne", "or", "go", "gob", "gov", "edu"})

# Lookups are memoised per SourceLists; a Lambda sees a small set of distinct sources, this only bounds
# memory against a flood of made-up utm_source values.
_CACHE_LIMIT = 8192
_NOWHERE: Mapping[SourceCategory, str] = MappingProxyType({})
_PLAIN_DOMAIN = re.compile(r"^(?:[a-z0-9_-]+\.)+[a-z0-9-]+$")


def _normalise_entry(value: str) -> str:
    entry = value.strip().lower()
    if "." in entry:
        if not _DOMAIN.match(entry) or ("*" in entry and not _WILDCARD.match(entry)):
            raise ValueError(f"{value!r} is not a domain (a '*' is only allowed as the whole last label)")
    elif not _NAME.match(entry):
        raise ValueError(f"{value!r} is not a source name")
    return entry


def _normalise_name(value: str) -> str:
    name = value.strip().lower()
    if not name:
        raise ValueError("a source name cannot be empty")
    return name


def _normalise_host(value: str) -> str:
    host = value.strip().lower().rstrip(".")
    if not _HOST.match(host):
        raise ValueError(f"{value!r} is not a host name")
    return host


SourceEntry = Annotated[str, AfterValidator(_normalise_entry)]
SourceName = Annotated[str, AfterValidator(_normalise_name)]
ExcludedHost = Annotated[str, AfterValidator(_normalise_host)]
SourceTable = dict[SourceName, list[SourceEntry]]


class SourceListDocument(BaseModel):
    """The JSON shape of a user's extension file (every key optional).

    Example::

        {
          "search": {"perplexity": ["perplexity.ai"]},
          "social": {"mastodon": ["infosec.exchange"], "circle": ["circle.so"]},
          "video": {}, "shopping": {},
          "excluded_hosts": ["community.example-partner.com"]
        }
    """

    # Built on first use, not at import: the Lambda only needs it at cold start.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    search: SourceTable = Field(default_factory=dict)
    social: SourceTable = Field(default_factory=dict)
    video: SourceTable = Field(default_factory=dict)
    shopping: SourceTable = Field(default_factory=dict)
    excluded_hosts: list[ExcludedHost] = Field(default_factory=list)


def read_google_source_categories(text: str) -> tuple[GoogleSourceCategory, ...]:
    """Parse Google's source-category list, saved as CSV: ``source,source_category`` rows.

    The first row is a header when its second cell is not a category. Sources are lower-cased (GA4's
    comparison ignores case, and so does :meth:`SourceLists.lookup`).

    Parameters
    ----------
    text
        The file's text: the packaged copy, or the list downloaded again from Google's help page and saved
        as CSV.

    Returns
    -------
    tuple[GoogleSourceCategory, ...]
        The rows in file order.

    Raises
    ------
    ValueError
        A row has no source, a category that is not one of Google's four, or a source that is neither a
        name nor a domain; the message names the line.
    """
    rows: list[GoogleSourceCategory] = []
    for line, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if line == 1 and (len(cells) < 2 or not cells[1].strip().upper().startswith(_GA4_PREFIX)):
            continue
        if len(cells) < 2 or not cells[0].strip():
            raise ValueError(f"line {line}: expected 'source,source_category'")
        try:
            rows.append(
                GoogleSourceCategory(_normalise_entry(cells[0]), SourceCategory.from_ga4_name(cells[1]))
            )
        except ValueError as exc:
            raise ValueError(f"line {line}: {exc}") from exc
    return tuple(rows)


def _is_country_ending(labels: list[str]) -> bool:
    """Whether ``labels`` look like a public ending: ``com``, ``de``, ``co.uk``, ``com.br``."""
    if len(labels) == 1:
        return 2 <= len(labels[0]) <= 3 and labels[0].isalpha()
    if len(labels) == 2:
        return labels[0] in _SECOND_LEVEL_LABELS and len(labels[1]) == 2 and labels[1].isalpha()
    return False


def _listed_brand(
    domain: str, category: SourceCategory, names: set[tuple[str, SourceCategory]]
) -> str | None:
    """The name a domain's brand label is listed under, if listed: ``ntp.msn.com`` -> ``msn``."""
    labels = domain.split(".")
    for position, label in enumerate(labels[:-1]):
        if _is_country_ending(labels[position + 1 :]):
            return label if (label, category) in names else None
    return None


type _Index = dict[str, dict[SourceCategory, str]]


class SourceLists:
    """The search, social, video and shopping source lists, indexed for fast lookups.

    Instances are immutable: :meth:`extended`, :meth:`extended_from_file` and
    :meth:`extended_from_google_file` return new lists. Build the
    lists once at cold start (``SourceLists.default()`` is cached) and pass them to
    :func:`closedloop.channels.classify_channel` / :func:`closedloop.traffic.parse_traffic_source`.
    """

    __slots__ = ("_brands", "_cache", "_domains", "_excluded", "_names", "_tables")

    def __init__(
        self,
        tables: Mapping[SourceCategory, Mapping[str, Iterable[str]]],
        excluded_hosts: Iterable[str] = (),
    ) -> None:
        self._tables: dict[SourceCategory, dict[str, tuple[str, ...]]] = {
            category: {name: tuple(entries) for name, entries in tables.get(category, {}).items()}
            for category in SourceCategory
        }
        self._excluded = frozenset(excluded_hosts)
        self._names: _Index = {}
        self._domains: _Index = {}
        self._brands: _Index = {}
        for category, table in self._tables.items():
            for name, entries in table.items():
                # A dotted name ("so.com", or a domain given alone to extended()) is that domain too.
                own = name if "." not in name or _PLAIN_DOMAIN.match(name) else None
                for entry in (*([own] if own else []), *entries):
                    if entry.endswith(".*"):
                        target = self._brands
                        entry = entry[:-2]
                    elif "." in entry:
                        target = self._domains
                    else:
                        target = self._names
                    # The first name to claim an entry keeps it, so extensions cannot silently rename.
                    target.setdefault(entry, {}).setdefault(category, name)
        self._cache: dict[str, Mapping[SourceCategory, str]] = {}

    @classmethod
    def default(cls) -> SourceLists:
        """Return the packaged lists (loaded once per process): Google's list plus closedloop's additions.

        Returns
        -------
        SourceLists
            The lists from ``closedloop/channels/data/``: ``ga4_source_categories.csv`` merged into the
            additions in ``search.json``, ``social.json``, ``video.json``, ``shopping.json`` and
            ``excluded_hosts.json``.
        """
        return _packaged_lists()

    @classmethod
    def packaged_additions(cls) -> SourceLists:
        """Return closedloop's additions alone, without the packaged copy of Google's list.

        For a newer download of Google's list in place of the packaged copy:
        ``SourceLists.packaged_additions().extended_from_google_file(path)``.

        Returns
        -------
        SourceLists
            The lists from the JSON files in ``closedloop/channels/data/``.
        """
        return _packaged_additions()

    @classmethod
    def from_document(cls, document: SourceListDocument) -> SourceLists:
        """Build lists from a validated document alone (without the packaged lists).

        Parameters
        ----------
        document
            The lists and exclusions.

        Returns
        -------
        SourceLists
            Lists holding only what ``document`` holds.
        """
        return cls(_document_tables(document), document.excluded_hosts)

    def extended(
        self,
        *,
        search: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        social: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        video: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        shopping: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        excluded_hosts: Iterable[str] = (),
    ) -> SourceLists:
        """Return new lists with more sources added.

        Parameters
        ----------
        search, social, video, shopping
            Either a mapping ``{name: [names or domains]}`` or a plain list of domains/names, each its
            own source (``["perplexity.ai"]`` is ``{"perplexity.ai": ["perplexity.ai"]}``). Entries for
            an existing name are added to it.
        excluded_hosts
            More hosts that never match a list.

        Returns
        -------
        SourceLists
            The extended lists; ``self`` is unchanged.

        Raises
        ------
        pydantic.ValidationError
            An entry is neither a name nor a domain (it is a ``ValueError``).
        """
        hosts = [excluded_hosts] if isinstance(excluded_hosts, str) else list(excluded_hosts)
        raw: dict[str, object] = {"excluded_hosts": hosts}
        for category, value in (
            (SourceCategory.SEARCH, search),
            (SourceCategory.SOCIAL, social),
            (SourceCategory.VIDEO, video),
            (SourceCategory.SHOPPING, shopping),
        ):
            if value is None:
                continue
            if isinstance(value, str):
                # A lone string is one source, not an iterable of one-letter names.
                raw[category.value] = {value: [value]}
            elif isinstance(value, Mapping):
                raw[category.value] = {
                    name: [entries] if isinstance(entries, str) else list(entries)
                    for name, entries in value.items()
                }
            else:
                raw[category.value] = {entry: [entry] for entry in value}
        return self.extended_with(SourceListDocument.model_validate(raw))

    def extended_with(self, document: SourceListDocument) -> SourceLists:
        """Return new lists with a validated extension document merged in.

        Parameters
        ----------
        document
            The sources and exclusions to add.

        Returns
        -------
        SourceLists
            The merged lists; ``self`` is unchanged.
        """
        merged: dict[SourceCategory, dict[str, list[str]]] = {
            category: {name: list(entries) for name, entries in table.items()}
            for category, table in self._tables.items()
        }
        for category, table in _document_tables(document).items():
            for name, entries in table.items():
                known = merged[category].setdefault(name, [])
                known.extend(entry for entry in entries if entry not in known)
        return SourceLists(merged, self._excluded | set(document.excluded_hosts))

    def extended_from_file(self, path: str | Path) -> SourceLists:
        """Return new lists extended by a JSON file shaped like :class:`SourceListDocument`.

        Meant for cold start, with the path taken from the function's settings.

        Parameters
        ----------
        path
            The JSON file.

        Returns
        -------
        SourceLists
            The merged lists.

        Raises
        ------
        OSError
            The file cannot be read.
        pydantic.ValidationError
            The file is not valid JSON of that shape (it is a ``ValueError``).
        """
        document = SourceListDocument.model_validate_json(Path(path).read_bytes())
        return self.extended_with(document)

    def extended_with_google_list(self, rows: Iterable[GoogleSourceCategory]) -> SourceLists:
        """Return new lists with the rows of Google's source-category list merged in.

        A row joins the source that already covers it on its list (``m.youtube.com`` joins
        ``youtube``, ``fb`` joins ``facebook``), so search referrals keep their engine's name; any other
        row is a source of its own. A row is an exact entry, so it is more specific than a domain or
        brand it sits under (``answers.yahoo.com`` is social only).

        Parameters
        ----------
        rows
            The rows, e.g. from :func:`read_google_source_categories`.

        Returns
        -------
        SourceLists
            The merged lists; ``self`` is unchanged.
        """
        rows = tuple(rows)
        bare_names = {(source, category) for source, category in rows if "." not in source}
        raw: dict[str, dict[str, list[str]]] = {category.value: {} for category in SourceCategory}
        for source, category in rows:
            name = self._lookup(source).get(category) or _listed_brand(source, category, bare_names) or source
            raw[category.value].setdefault(name, []).append(source)
        return self.extended_with(SourceListDocument.model_validate(raw))

    def extended_from_google_file(self, path: str | Path) -> SourceLists:
        """Return new lists with Google's source-category list, saved as CSV, merged in.

        Parameters
        ----------
        path
            The CSV file (see :func:`read_google_source_categories`).

        Returns
        -------
        SourceLists
            The merged lists.

        Raises
        ------
        OSError
            The file cannot be read.
        ValueError
            A row is malformed (the message names the line).
        """
        rows = read_google_source_categories(Path(path).read_text(encoding="utf-8-sig"))
        return self.extended_with_google_list(rows)

    def to_document(self) -> SourceListDocument:
        """Return the lists as a document (e.g. to print or diff them)."""
        return SourceListDocument.model_validate(
            {
                **{
                    category.value: {name: list(entries) for name, entries in table.items()}
                    for category, table in self._tables.items()
                },
                "excluded_hosts": sorted(self._excluded),
            }
        )

    def lookup(self, source: str) -> Mapping[SourceCategory, str]:
        """Find the lists a source (a ``utm_source`` value or a referrer host) is on.

        Parameters
        ----------
        source
            A name such as ``"Facebook"`` or a host such as ``"www.google.co.uk"``; compared case-
            insensitively.

        Returns
        -------
        Mapping[SourceCategory, str]
            For each list the source is on, the listed name (``{SEARCH: "google"}``); empty if none.
            A name matches exactly. For a host the most specific match decides: the longest suffix that
            is listed or excluded (an excluded one matches nothing), else a ``name.*`` brand; several
            lists can only come from entries at that same level.
        """
        key = source.strip().lower()
        found = self._cache.get(key)
        if found is None:
            found = self._lookup(key)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    def is_listed(self, source: str, category: SourceCategory) -> bool:
        """Whether ``source`` is on the ``category`` list (see :meth:`lookup`)."""
        return category in self.lookup(source)

    def _lookup(self, key: str) -> Mapping[SourceCategory, str]:
        host = key.rstrip(".")
        if "." not in host:
            return MappingProxyType(dict(self._names.get(key, {})))
        labels = host.split(".")
        # The most specific match decides: the longest listed or excluded suffix, then a brand.
        for start in range(len(labels) - 1):
            suffix = ".".join(labels[start:])
            if suffix in self._excluded:
                return _NOWHERE
            found = self._domains.get(suffix)
            if found:
                return MappingProxyType(dict(found))
        for position, label in enumerate(labels[:-1]):
            brand = self._brands.get(label)
            if brand and _is_country_ending(labels[position + 1 :]):
                return MappingProxyType(dict(brand))
        return _NOWHERE


def _document_tables(document: SourceListDocument) -> dict[SourceCategory, SourceTable]:
    return {
        SourceCategory.SEARCH: document.search,
        SourceCategory.SOCIAL: document.social,
        SourceCategory.VIDEO: document.video,
        SourceCategory.SHOPPING: document.shopping,
    }


@functools.cache
def _packaged_additions() -> SourceLists:
    data = resources.files("closedloop.channels").joinpath("data")
    raw: dict[str, object] = {
        category.value: json.loads(data.joinpath(f"{category}.json").read_bytes())["sources"]
        for category in SourceCategory
    }
    raw["excluded_hosts"] = json.loads(data.joinpath("excluded_hosts.json").read_bytes())["hosts"]
    return SourceLists.from_document(SourceListDocument.model_validate(raw))


@functools.cache
def _packaged_lists() -> SourceLists:
    text = resources.files("closedloop.channels").joinpath("data", GOOGLE_LIST_FILE).read_text("utf-8")
    return _packaged_additions().extended_with_google_list(read_google_source_categories(text))
