"""Reading ChannelAttribution's paths CSV: the batch it gives, and errors that name the line."""

from __future__ import annotations

import pytest

from closedloop.attribution import PathsFileError, parse_paths_csv

GOOD = b"""path,total_conversions,total_conversion_value,total_null
Paid Search > Email > Direct,2,300.5,5
 Display>Paid Search ,0,0,7
Email,1,80,0
Referral,0,0,0
"""


def test_rows_become_converting_and_null_journeys() -> None:
    batch = parse_paths_csv(GOOD)

    # Channels are trimmed and coded in order of first appearance, even on a row of no journey
    assert batch.channel_names == ("Paid Search", "Email", "Direct", "Display", "Referral")
    # Converting rows first (weights = conversions), then null rows (weights = nulls); weight 0 left out
    paths = [
        [batch.channel_names[c] for c in batch.channel[start:end]]
        for start, end in zip(batch.offsets[:-1], batch.offsets[1:], strict=True)
    ]
    assert paths == [
        ["Paid Search", "Email", "Direct"],
        ["Email"],
        ["Paid Search", "Email", "Direct"],
        ["Display", "Paid Search"],
    ]
    assert batch.converted.tolist() == [True, True, False, False]
    assert batch.weight.tolist() == [2, 1, 5, 7]
    assert batch.conversion_value.tolist() == [300.5, 80.0, 0.0, 0.0]
    assert batch.is_direct.tolist() == [False, False, True, False, False, False, True, False, False]


def test_optional_columns_and_other_delimiters() -> None:
    batch = parse_paths_csv(b"path;total_conversions\nA > B;3\nB;1\n")
    assert batch.weight.tolist() == [3, 1]
    assert batch.conversion_value.tolist() == [0.0, 0.0]
    assert batch.converted.all()


def test_custom_path_separator() -> None:
    batch = parse_paths_csv(b"path,total_conversions\nA | B,1\n", separator="|")
    assert batch.channel_names == ("A", "B")


def test_trailing_blank_lines_are_not_rows() -> None:
    assert parse_paths_csv(b"path,total_conversions\nA,1\n\n\n").n_journeys == 1


ERRORS: dict[str, tuple[bytes, int | None, str]] = {
    "missing column": (b"path,total_null\nA,1\n", 1, "missing column.*total_conversions"),
    "no path column": (b"channels,total_conversions\nA,1\n", 1, "missing column.*path"),
    "negative count": (
        b"path,total_conversions,total_null\nA,1,0\nB,2,-3\n",
        3,
        "total_null is negative: -3",
    ),
    "fractional count": (
        b"path,total_conversions\nA,1\nB,1.5\n",
        3,
        "total_conversions is not a whole number",
    ),
    "text in a count": (
        b"path,total_conversions\nA,1\nB,2\nC,many\n",
        4,
        "total_conversions is not a number: 'many'",
    ),
    "missing count": (b"path,total_conversions,total_null\nA,1,0\nB,,1\n", 3, "total_conversions is empty"),
    "empty path": (b"path,total_conversions\nA,1\n ,2\n", 3, "empty path"),
    "blank line in the middle": (b"path,total_conversions\nA,1\n\nB,2\n", 3, "empty path"),
    "empty channel name": (
        b"path,total_conversions\nA,1\nA > > B,2\n",
        3,
        "empty channel name in path 'A > > B'",
    ),
    "trailing separator": (b"path,total_conversions\nA >,1\n", 2, "empty channel name"),
    "infinite value": (b"path,total_conversions,total_conversion_value\nA,1,inf\n", 2, "not finite"),
    "a line with too many fields": (b"path,total_conversions\nA,1\nB,2,7\n", 3, "expected 2 fields, found 3"),
    "the earliest line wins": (b"path,total_conversions,total_null\nA,1,-1\n,1,0\n", 2, "negative"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_line(case: tuple[bytes, int | None, str]) -> None:
    data, line, message = case
    with pytest.raises(PathsFileError, match=message) as caught:
        parse_paths_csv(data, source="paths.csv")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"paths.csv:{line}: ")


def test_empty_separator_is_refused() -> None:
    with pytest.raises(PathsFileError, match="separator"):
        parse_paths_csv(GOOD, separator="")
