"""Attribution benchmark: closedloop.attribution side by side with ChannelAttribution, and against truth.

    python benchmarks/attribution.py                   # 1,000,000 journeys (about a minute)
    python benchmarks/attribution.py --journeys 20000  # quick run, e.g. in CI

One run generates seeded synthetic journeys with a known ground truth (see journeys_generator),
writes them as ChannelAttribution's paths CSV, then times, on one core and best of ``--repeat``:

* our exact Markov model vs ChannelAttribution's ``markov_model`` at its default settings and at
  ``nsim_start=1e7``, both from the same CSV, parsing included, and the largest difference in
  attributed conversion share per channel;
* all our rule-based models vs its ``heuristic_models`` (first, last, linear touch);
* our Shapley model over the 12 channels, and ``attribute()`` with every model;
* then how well each model ranks (Spearman) and sizes (share error) the channels against the
  generator's true incremental effects.

ChannelAttribution (GPL) is a benchmark-only peer: ``pip install channelattribution==2.2.5``
(it also needs matplotlib). Without it the benchmark still runs and says so. It never calls
``install_pro()``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from journeys_generator import CHANNELS, generate_journeys, write_paths_csv

from closedloop.attribution import (
    ALL_MODELS,
    RULE_BASED_MODELS,
    AttributionModel,
    JourneyBatch,
    attribute,
    channel_totals,
    parse_paths_csv,
)
from closedloop.attribution.cli import CLI_MODELS

CSV_RULE_MODELS = tuple(model for model in CLI_MODELS if model in RULE_BASED_MODELS)


def best_time(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (the least disturbed by other work), and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks with ties averaged (for Spearman's correlation)."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(values.size)
    ranked[order] = np.arange(values.size, dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def shares_by_name(
    names: tuple[str, ...] | list[str], conversions: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Conversion shares in the generator's channel order."""
    total = conversions.sum()
    lookup = dict(zip(names, conversions / total if total > 0 else conversions, strict=True))
    return np.array([lookup.get(name, 0.0) for name in CHANNELS])


def peer() -> Any | None:
    """The ChannelAttribution module, or None when it is not installed (its banner silenced)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import ChannelAttribution  # GPL: benchmark only, never in the product
    except ImportError as exc:
        print(f"  ChannelAttribution is not installed ({exc}): peer columns skipped.")
        print("  To compare: pip install channelattribution==2.2.5 matplotlib")
        return None
    return ChannelAttribution


def peer_markov(module: Any, csv_path: Path, **settings: Any) -> NDArray[np.float64]:
    import pandas as pd

    data = pd.read_csv(csv_path)
    with contextlib.redirect_stdout(io.StringIO()):
        result = module.markov_model(
            data,
            "path",
            "total_conversions",
            var_value="total_conversion_value",
            var_null="total_null",
            verbose=False,
            flg_pro=False,
            **settings,
        )
    table = result["result"] if isinstance(result, dict) else result
    return shares_by_name(list(table["channel_name"]), table["total_conversions"].to_numpy(dtype=np.float64))


def peer_heuristics(module: Any, csv_path: Path) -> Any:
    import pandas as pd

    data = pd.read_csv(csv_path)
    with contextlib.redirect_stdout(io.StringIO()):
        return module.heuristic_models(
            data, "path", "total_conversions", var_value="total_conversion_value", flg_pro=False
        )


BATCH_COLUMNS = (
    "offsets",
    "channel",
    "touch_time",
    "is_direct",
    "converted",
    "conversion_time",
    "conversion_value",
    "lead_touch",
    "opportunity_touch",
    "weight",
)


def save_batch(batch: JourneyBatch, path: Path) -> None:
    np.savez(path, **{name: getattr(batch, name) for name in BATCH_COLUMNS})


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``ru_maxrss`` survives ``exec`` on Linux (a child starts with its parent's peak), so the
    kernel's per-address-space high-water mark is read when there is one.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(batch_path: Path, csv_path: Path) -> None:
    """Child process: our whole pipeline on the saved batch and CSV; print the peak RSS in MB."""
    arrays = np.load(batch_path)
    batch = JourneyBatch.from_arrays(
        arrays["offsets"], arrays["channel"], CHANNELS, **{name: arrays[name] for name in BATCH_COLUMNS[2:]}
    )
    baseline = peak_rss_mb()
    channel_totals(parse_paths_csv(csv_path.read_bytes()), CLI_MODELS)
    attribute(batch, ALL_MODELS)
    channel_totals(batch, ALL_MODELS)
    channel_totals(all_converting(batch), RULE_BASED_MODELS)
    print(f"{peak_rss_mb():.0f} {baseline:.0f}")


def measure_memory(batch: JourneyBatch, csv_path: Path) -> tuple[float, float]:
    """Peak RSS (MB) of a fresh process running every model, and its RSS once the batch is loaded."""
    batch_path = csv_path.with_name("batch.npz")
    save_batch(batch, batch_path)
    done = subprocess.run(
        [sys.executable, __file__, "--memory-probe", str(batch_path), str(csv_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, baseline = (float(value) for value in done.stdout.split())
    return peak, baseline


def all_converting(batch: JourneyBatch) -> JourneyBatch:
    """The worst case for rule-based models: every journey converts, milestones mid-journey."""
    size = np.diff(batch.offsets)
    return dataclasses.replace(
        batch,
        converted=np.ones(batch.n_journeys, dtype=np.bool_),
        conversion_value=np.full(batch.n_journeys, 1000.0),
        lead_touch=size // 3,
        opportunity_touch=(2 * size) // 3,
    )


def timing(label: str, seconds: float) -> None:
    print(f"  {label:<60}{seconds:8.3f} s")


def report_shares(label: str, exact: NDArray[np.float64], other: NDArray[np.float64]) -> str:
    difference = np.abs(other - exact)
    relative = difference / np.where(exact > 0, exact, np.inf)
    worst, worst_relative = int(np.argmax(difference)), int(np.argmax(relative))
    return (
        f"{label}: largest share difference {difference[worst] * 100:.2f} pp ({CHANNELS[worst]}); "
        f"relative: largest {relative[worst_relative] * 100:.1f} % ({CHANNELS[worst_relative]}), "
        f"mean {relative.mean() * 100:.1f} %"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--journeys", type=int, default=1_000_000, help="journeys to generate (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the best counts")
    parser.add_argument("--no-peer", action="store_true", help="skip ChannelAttribution even if installed")
    parser.add_argument("--no-precise", action="store_true", help="skip ChannelAttribution at nsim_start=1e7")
    parser.add_argument("--memory-probe", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return 0
    # One core, for us as for the peer (pyarrow's CSV reader would use every core otherwise).
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    print(
        f"== closedloop.attribution benchmark: {args.journeys:,} journeys, {len(CHANNELS)} channels", end=""
    )
    print(f", seed {args.seed}")
    elapsed, synthetic = best_time(lambda: generate_journeys(args.journeys, args.seed), 1)
    batch = synthetic.batch
    workdir = tempfile.TemporaryDirectory(prefix="attribution-bench-")
    csv_path = Path(workdir.name) / "paths.csv"
    n_paths = write_paths_csv(batch, str(csv_path))
    print(
        f"generated {batch.n_touches:,} touches ({batch.n_touches / batch.n_journeys:.2f} per journey), "
        f"conversion rate {batch.converted.mean() * 100:.2f} %, in {elapsed:.2f} s; "
        f"{n_paths:,} distinct paths in {csv_path} ({csv_path.stat().st_size / 1e6:.1f} MB)"
    )
    data = csv_path.read_bytes

    def our_markov() -> NDArray[np.float64]:
        from_csv = parse_paths_csv(data())
        totals = channel_totals(from_csv, [AttributionModel.MARKOV])
        return shares_by_name(totals.channel_names, totals.conversions[0])

    def our_csv_rules() -> Any:
        return channel_totals(parse_paths_csv(data()), CSV_RULE_MODELS)

    markov_time, markov_shares = best_time(our_markov, args.repeat)
    csv_rules_time, _ = best_time(our_csv_rules, args.repeat)
    rules_time, _ = best_time(lambda: channel_totals(batch, RULE_BASED_MODELS), args.repeat)
    worst = all_converting(batch)
    worst_time, _ = best_time(lambda: channel_totals(worst, RULE_BASED_MODELS), args.repeat)
    shapley_time, _ = best_time(lambda: channel_totals(batch, [AttributionModel.SHAPLEY]), args.repeat)
    attribute_time, credits = best_time(lambda: attribute(batch, ALL_MODELS), args.repeat)
    totals = channel_totals(batch, ALL_MODELS)
    peak_mb, loaded_mb = measure_memory(batch, csv_path)

    print(f"\n-- closedloop (one core, best of {args.repeat})")
    timing("exact Markov, from the CSV, parsing included", markov_time)
    timing(
        f"all {len(RULE_BASED_MODELS)} rule-based models, {batch.n_journeys:,} journeys in memory", rules_time
    )
    timing("the same, every journey converting (worst case)", worst_time)
    timing(f"the {len(CSV_RULE_MODELS)} rule-based models a paths CSV supports, from the CSV", csv_rules_time)
    timing(f"Shapley over {len(CHANNELS)} channels (exact)", shapley_time)
    timing(f"attribute(): every model, {len(credits):,} credit rows", attribute_time)
    label = f"peak memory, every model in a fresh process (batch loaded: {loaded_mb:.0f} MB)"
    print(f"  {label:<60}{peak_mb:8.0f} MB")

    module = None if args.no_peer else peer()
    peer_default: NDArray[np.float64] | None = None
    if module is not None:
        print(f"\n-- ChannelAttribution 2.2.5 (one core, best of {args.repeat}), same CSV, read_csv included")
        default_time, peer_default = best_time(lambda: peer_markov(module, csv_path), args.repeat)
        timing("markov_model, default settings (nsim_start=1e5)", default_time)
        heuristic_time, _ = best_time(lambda: peer_heuristics(module, csv_path), args.repeat)
        timing("heuristic_models (first, last, linear)", heuristic_time)
        print("\n-- ratios (their time / ours)")
        print(f"  Markov at default settings: {default_time / markov_time:6.1f}x   (target >= 10x)")
        if not args.no_precise:
            precise_time, peer_precise = best_time(
                lambda: peer_markov(module, csv_path, nsim_start=1e7), args.repeat
            )
            print(
                f"  Markov at nsim_start=1e7:   {precise_time / markov_time:6.1f}x   (target >= 20x)"
                f"   [theirs {precise_time:.3f} s]"
            )
        ratio = heuristic_time / csv_rules_time
        print(f"  heuristic_models vs our {len(CSV_RULE_MODELS)} rule models from the CSV: {ratio:6.1f}x")
        ratio = heuristic_time / rules_time
        print(f"  heuristic_models vs our {len(RULE_BASED_MODELS)} rule models on the batch: {ratio:6.1f}x")
        print("\n-- Markov accuracy: ChannelAttribution's simulation vs our exact solution")
        print("  " + report_shares("default settings", markov_shares, peer_default))
        if not args.no_precise:
            print("  " + report_shares("nsim_start=1e7  ", markov_shares, peer_precise))

    print("\n-- against the ground truth (true incremental conversions per channel)")
    truth = synthetic.true_share
    print(f"  {'model':<28}{'Spearman':>9}{'mean |share error|':>20}{'max |share error|':>19}")
    rows: list[tuple[str, NDArray[np.float64]]] = [
        (model.value, shares_by_name(totals.channel_names, totals.conversions[index]))
        for index, model in enumerate(totals.models)
    ]
    if peer_default is not None:
        rows.append(("ChannelAttribution markov", peer_default))
    for name, shares in sorted(rows, key=lambda row: -spearman(row[1], truth)):
        error = np.abs(shares - truth) * 100
        print(f"  {name:<28}{spearman(shares, truth):9.3f}{error.mean():17.2f} pp{error.max():16.2f} pp")
    print(
        "\n  true shares: "
        + ", ".join(f"{name} {share * 100:.1f}%" for name, share in zip(CHANNELS, truth, strict=True))
    )
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
