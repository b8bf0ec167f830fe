"""Aggregated paths in ChannelAttribution's CSV layout, as a journey batch.

Columns: ``path`` (channels separated by ``>``, spaces around names ignored) and
``total_conversions`` (required); ``total_conversion_value`` and ``total_null`` (optional, 0
when absent). A row stands for ``total_conversions`` converting journeys carrying
``total_conversion_value`` in all, and ``total_null`` journeys that did not convert.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.errors import PathsFileError
from closedloop.attribution.journeys import JourneyBatch

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PATH_COLUMNS", "parse_paths_csv"]

PATH_COLUMNS = ("path", "total_conversions", "total_conversion_value", "total_null")
_REQUIRED = ("path", "total_conversions")
_COUNT_COLUMNS = ("total_conversions", "total_null")
_DELIMITERS = (",", ";", "\t", "|")
_FIRST_DATA_LINE = 2  # the header is line 1


@dataclass(frozen=True, slots=True)
class _Problem:
    row: int
    message: str


def _header_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _sniff_delimiter(data: bytes) -> str:
    header = _header_line(data).decode("utf-8", errors="replace")
    for delimiter in _DELIMITERS:
        if "path" in (name.strip().strip('"') for name in header.split(delimiter)):
            return delimiter
    return ","


def _number_problem(values: list[str | None], name: str) -> _Problem | None:
    """The first cell of a column that is not a number (the slow path, only on a bad file)."""
    for row, text in enumerate(values):
        try:
            float(text or "")
        except ValueError:
            shown = (text or "").strip()
            return _Problem(row, f"{name} is not a number: {shown!r}" if shown else f"{name} is empty")
    return None


def _ragged_row(data: bytes, delimiter: str, width: int) -> _Problem | None:
    """The first line whose number of fields is not the header's (the slow path, on a bad file)."""
    text = data.decode("utf-8", errors="replace").splitlines()
    for row, fields in enumerate(csv.reader(text, delimiter=delimiter)):
        if fields and len(fields) != width:
            return _Problem(row, f"expected {width} fields, found {len(fields)}")
    return None


def _first_row(mask: NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _read_table(data: bytes, delimiter: str, source: str) -> pa.Table:
    """Read the file with pyarrow; numbers as float64 so every check can point at a line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False)
    try:
        header = pacsv.read_csv(pa.BufferReader(_header_line(data) + b"\n"), parse_options=parse).column_names
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise PathsFileError(f"cannot read the header: {exc}", source=source) from exc
    names = [name.strip() for name in header]
    missing = [name for name in _REQUIRED if name not in names]
    if missing:
        raise PathsFileError(
            f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'none'})",
            line=1,
            source=source,
        )
    wanted = [name for name in PATH_COLUMNS if name in names]
    rename = dict(zip(header, names, strict=True))
    types = {
        raw: (pa.string() if rename[raw] == "path" else pa.float64())
        for raw in header
        if rename[raw] in wanted
    }
    convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types), strings_can_be_null=False)
    try:
        table = pacsv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        text_types = {raw: pa.string() for raw in types}
        try:
            table = pacsv.read_csv(
                pa.BufferReader(data),
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(column_types=text_types, include_columns=list(types)),
            )
        except pa.ArrowInvalid as inner:
            ragged = _ragged_row(data, delimiter, len(header))
            if ragged is not None:
                raise PathsFileError(ragged.message, line=ragged.row + 1, source=source) from inner
            raise PathsFileError(f"cannot parse the file: {inner}", source=source) from inner
        table = table.rename_columns([rename[raw] for raw in table.column_names])
        for name in wanted:
            if name != "path":
                problem = _number_problem(table.column(name).to_pylist(), name)
                if problem is not None:
                    raise PathsFileError(
                        problem.message, line=problem.row + _FIRST_DATA_LINE, source=source
                    ) from exc
        raise PathsFileError(f"cannot parse the file: {exc}", source=source) from exc
    return table.rename_columns([rename[raw] for raw in table.column_names])


def parse_paths_csv(
    data: bytes,
    *,
    source: str = "<paths>",
    separator: str = ">",
    delimiter: str | None = None,
    direct_channel: str | None = "Direct",
) -> JourneyBatch:
    """Parse a ChannelAttribution-style paths CSV into a journey batch.

    Parameters
    ----------
    data : bytes
        The file's content (UTF-8).
    source : str, default "<paths>"
        Name used in error messages.
    separator : str, default ">"
        Separator between the channels of a path.
    delimiter : str, optional
        CSV delimiter; sniffed from the header (``,``, ``;``, tab or ``|``) when not given.
    direct_channel : str or None, default "Direct"
        Name of the Direct channel (for ``last_non_direct``).

    Returns
    -------
    JourneyBatch
        One converting journey row (weight ``total_conversions``, value
        ``total_conversion_value``) and one non-converting row (weight ``total_null``) per path
        row, leaving out rows of weight 0. Channels are coded in order of first appearance.
        There are no touch times or milestones.

    Raises
    ------
    PathsFileError
        On a missing column, an empty path or channel name, a count that is negative, not a
        whole number or missing, or a value that is not finite; the message names the line.
    """
    import pyarrow.compute as pc

    if not separator:
        raise PathsFileError("the path separator must not be empty", source=source)
    table = _read_table(data, delimiter or _sniff_delimiter(data), source)
    path_column = table.column("path").combine_chunks()
    pieces = pc.split_pattern(path_column, pattern=separator)
    list_offsets = np.asarray(pieces.offsets.to_numpy(), dtype=np.int64)
    # Encode the raw tokens, then trim the (small) dictionary: no per-touch string work.
    encoded = pc.dictionary_encode(pieces.flatten())
    trimmed = [str(name).strip() for name in encoded.dictionary.to_pylist()]
    channel_names = tuple(dict.fromkeys(name for name in trimmed if name))
    code_of = {name: code for code, name in enumerate(channel_names)}
    recode = np.asarray([code_of.get(name, -1) for name in trimmed] or [-1], dtype=np.int32)
    channel = recode[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    blank = channel < 0
    n_rows = table.num_rows
    columns: dict[str, NDArray[np.float64]] = {}
    if blank.any():
        empty_row = np.add.reduceat((~blank).astype(np.int64), list_offsets[:-1]) == 0
    else:
        empty_row = np.zeros(n_rows, dtype=np.bool_)
    for name in PATH_COLUMNS[1:]:
        if name in table.column_names:
            array = table.column(name).combine_chunks()
            columns[name] = array.to_numpy(zero_copy_only=False).astype(np.float64)
            empty_row &= np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    # Blank lines at the end of a file are not rows.
    n_rows = n_rows - int(np.argmax(~empty_row[::-1])) if (~empty_row).any() else 0
    columns = {name: values[:n_rows] for name, values in columns.items()}
    list_offsets = list_offsets[: n_rows + 1]

    problems: list[_Problem] = []
    # A blank line is reported as an empty path rather than as its empty counts.
    blank_row = _first_row(blank[: list_offsets[-1]])
    if blank_row is not None:
        row = int(np.searchsorted(list_offsets, blank_row, side="right") - 1)
        text = str(path_column[row].as_py())
        problems.append(
            _Problem(row, f"empty channel name in path {text!r}" if text.strip() else "empty path")
        )
    for name, values in columns.items():
        missing = np.isnan(values)
        checks: list[tuple[NDArray[np.bool_], str]] = [(missing, f"{name} is empty")]
        if name in _COUNT_COLUMNS:
            checks += [
                (~missing & (values < 0), f"{name} is negative"),
                (~missing & (values >= 0) & (np.floor(values) != values), f"{name} is not a whole number"),
            ]
        else:
            checks.append((~missing & ~np.isfinite(values), f"{name} is not finite"))
        for mask, message in checks:
            bad = _first_row(mask)
            if bad is not None:
                shown = message if "empty" in message else f"{message}: {float(values[bad]):g}"
                problems.append(_Problem(bad, shown))
    if problems:
        first = min(problems, key=lambda problem: problem.row)
        raise PathsFileError(first.message, line=first.row + _FIRST_DATA_LINE, source=source)

    conversions = columns["total_conversions"].astype(np.int64)
    nulls = columns["total_null"].astype(np.int64) if "total_null" in columns else np.zeros(n_rows, np.int64)
    value = columns.get("total_conversion_value", np.zeros(n_rows))
    converting_rows = np.flatnonzero(conversions > 0)
    null_rows = np.flatnonzero(nulls > 0)
    rows = np.concatenate([converting_rows, null_rows])
    offsets, touches = seg.take(list_offsets, rows)
    if not math.isfinite(float(value[converting_rows].sum())):
        raise PathsFileError("total_conversion_value overflows", source=source)
    return JourneyBatch.from_arrays(
        offsets,
        channel[touches],
        channel_names,
        converted=np.concatenate(
            [np.ones(converting_rows.size, np.bool_), np.zeros(null_rows.size, np.bool_)]
        ),
        conversion_value=np.concatenate([value[converting_rows], np.zeros(null_rows.size)]),
        weight=np.concatenate([conversions[converting_rows], nulls[null_rows]]),
        direct_channel=direct_channel,
    )
