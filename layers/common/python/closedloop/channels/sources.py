"""Source lists: which traffic sources are search engines, social networks, video or shopping sites.

The GA4 channel rules ask "is this source on the list of search sites?" (and of social, video and shopping
sites). The lists are data, shipped as JSON files in ``closedloop/channels/data/`` and extendable by the
user, either in code (:meth:`SourceLists.extended`) or with a JSON file of the same shape
(:meth:`SourceLists.extended_from_file`).

Each list maps a source *name* (what reports show for organic search referrals, e.g. ``"google"``) to
entries of two kinds:

- a name without a dot (``"fb"``, ``"google ads"``): matches a ``utm_source`` equal to it;
- a domain (``"linkedin.com"``): matches that host and all its subdomains (``www.linkedin.com``).
  ``"google.*"`` matches ``google`` under any country ending
  (``google.de``, ``google.co.uk``, ``www.google.com.br``). Android package ids, which Android apps send
  as ``android-app://<package>/`` referrers, are written and matched like domains.

Hosts on the exclusion list (webmail, documents, consoles of the same companies, e.g.
``mail.google.com``) never match a list even though they sit under a listed domain.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "SourceCategory",
    "SourceListDocument",
    "SourceLists",
]


class SourceCategory(StrEnum):
    """The kinds of source the GA4 channel rules look up by list."""

    SEARCH = "search"
    SOCIAL = "social"
    VIDEO = "video"
    SHOPPING = "shopping"


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


def _is_country_ending(labels: list[str]) -> bool:
    """Whether ``labels`` look like a public ending: ``com``, ``de``, ``co.uk``, ``com.br``."""
    if len(labels) == 1:
        return 2 <= len(labels[0]) <= 3 and labels[0].isalpha()
    if len(labels) == 2:
        return labels[0] in _SECOND_LEVEL_LABELS and len(labels[1]) == 2 and labels[1].isalpha()
    return False


type _Index = dict[str, dict[SourceCategory, str]]


class SourceLists:
    """The search, social, video and shopping source lists, indexed for fast lookups.

    Instances are immutable: :meth:`extended` and :meth:`extended_from_file` return new lists. Build the
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
                self._names.setdefault(name, {}).setdefault(category, name)
                for entry in entries:
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
        """Return the packaged lists (loaded once per process).

        Returns
        -------
        SourceLists
            The lists from ``closedloop/channels/data/*.json``.
        """
        return _packaged_lists()

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
        found: dict[SourceCategory, str] = dict(self._names.get(key, {}))
        host = key.rstrip(".")
        if "." in host and not self._is_excluded(host):
            labels = host.split(".")
            # Longest suffix first, so the most specific domain names the source.
            for start in range(len(labels) - 1):
                for category, name in self._domains.get(".".join(labels[start:]), {}).items():
                    found.setdefault(category, name)
            for position, label in enumerate(labels[:-1]):
                brand = self._brands.get(label)
                if brand and _is_country_ending(labels[position + 1 :]):
                    for category, name in brand.items():
                        found.setdefault(category, name)
        return MappingProxyType(found)

    def _is_excluded(self, host: str) -> bool:
        if not self._excluded:
            return False
        labels = host.split(".")
        return any(".".join(labels[start:]) in self._excluded for start in range(len(labels) - 1))


def _document_tables(document: SourceListDocument) -> dict[SourceCategory, SourceTable]:
    return {
        SourceCategory.SEARCH: document.search,
        SourceCategory.SOCIAL: document.social,
        SourceCategory.VIDEO: document.video,
        SourceCategory.SHOPPING: document.shopping,
    }


@functools.cache
def _packaged_lists() -> SourceLists:
    data = resources.files("closedloop.channels").joinpath("data")
    raw: dict[str, object] = {
        category.value: json.loads(data.joinpath(f"{category}.json").read_bytes())["sources"]
        for category in SourceCategory
    }
    raw["excluded_hosts"] = json.loads(data.joinpath("excluded_hosts.json").read_bytes())["hosts"]
    return SourceLists.from_document(SourceListDocument.model_validate(raw))
