"""Command line: attribute a ChannelAttribution-style paths CSV and print channel totals as CSV.

``python -m closedloop.attribution PATHS.csv --model markov`` prints
``channel_name,total_conversions,total_conversion_value``; with several models (``--model all``
or ``--model markov,linear``) a leading ``model`` column tells them apart.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from closedloop.attribution.engine import ChannelTotals, channel_totals, resolve_models
from closedloop.attribution.errors import AttributionError
from closedloop.attribution.options import ALL_MODELS, AttributionModel, AttributionOptions
from closedloop.attribution.paths_csv import parse_paths_csv

__all__ = ["CLI_MODELS", "main"]

_NEEDS_TIMES = {
    AttributionModel.TIME_DECAY: "touch times",
    AttributionModel.W_SHAPED: "lead and opportunity touches",
    AttributionModel.FULL_PATH: "lead and opportunity touches",
}
CLI_MODELS: tuple[AttributionModel, ...] = tuple(model for model in ALL_MODELS if model not in _NEEDS_TIMES)
"""What ``--model all`` runs: the models a paths file has enough data for."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m closedloop.attribution",
        description="Attribute the conversions of aggregated paths (ChannelAttribution's CSV) to channels.",
    )
    parser.add_argument(
        "paths", type=Path, help="CSV with path, total_conversions[, total_conversion_value, total_null]"
    )
    parser.add_argument(
        "--model",
        default="markov",
        help=f"'all' or a comma-separated list of: {', '.join(m.value for m in CLI_MODELS)} (default markov)",
    )
    parser.add_argument("--order", type=int, default=1, help="Markov chain order (default: 1)")
    parser.add_argument(
        "--separator", default=">", help="separator between the channels of a path (default: '>')"
    )
    parser.add_argument("--delimiter", default=None, help="CSV delimiter (default: sniffed from the header)")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="channel that gets no credit (repeatable)",
    )
    parser.add_argument(
        "--direct-channel", default="Direct", help="name of the Direct channel (default: Direct)"
    )
    parser.add_argument(
        "--shapley-max-exact", type=int, default=12, help="exact Shapley up to this many channels per path"
    )
    return parser


def _chosen_models(text: str) -> tuple[AttributionModel, ...]:
    if text.strip().lower() == "all":
        return CLI_MODELS
    models = resolve_models(part.strip() for part in text.split(",") if part.strip())
    if not models:
        raise AttributionError("no model given")
    for model in models:
        if model in _NEEDS_TIMES:
            raise AttributionError(
                f"model {model.value} needs {_NEEDS_TIMES[model]}, which a paths file does not have"
            )
    return models


def _number(value: float) -> str:
    return repr(round(value, 6) + 0.0)  # + 0.0 turns -0.0 into 0.0


def write_totals(totals: ChannelTotals, out: TextIO) -> None:
    """Write channel totals as CSV, with a ``model`` column when there are several models.

    Parameters
    ----------
    totals : ChannelTotals
        From :func:`channel_totals`.
    out : TextIO
        Where to write.
    """
    writer = csv.writer(out, lineterminator="\n")
    several = len(totals.models) > 1
    header = ["channel_name", "total_conversions", "total_conversion_value"]
    writer.writerow(["model", *header] if several else header)
    for model, channel, conversions, value in totals.rows():
        row = [channel, _number(conversions), _number(value)]
        writer.writerow([model.value, *row] if several else row)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (``sys.argv[1:]`` when not given).
    out, err : TextIO, optional
        Streams for the CSV and for errors (stdout and stderr when not given).

    Returns
    -------
    int
        0 on success, 2 on a bad file or bad arguments.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        models = _chosen_models(args.model)
        options = AttributionOptions(
            lookback_days=None,
            excluded_channels=frozenset(args.exclude),
            markov_order=args.order,
            shapley_max_exact=args.shapley_max_exact,
        )
        try:
            data = args.paths.read_bytes()
        except OSError as exc:
            raise AttributionError(f"{args.paths}: {exc.strerror or exc}") from exc
        batch = parse_paths_csv(
            data,
            source=str(args.paths),
            separator=args.separator,
            delimiter=args.delimiter,
            direct_channel=args.direct_channel,
        )
        totals = channel_totals(batch, models, options)
    except (AttributionError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    write_totals(totals, out)
    return 0
