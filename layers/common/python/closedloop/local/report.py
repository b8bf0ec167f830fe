"""The demo's report: the Athena named queries run with DuckDB, the ground truth, terminal and HTML.

The HTML is one self-contained file (inline CSS and SVG charts drawn here, no script, no CDN), so it
opens offline and can be mailed to a marketing lead. Every chart is an ``svg.chart`` whose bars are
``rect.bar`` elements.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from closedloop.analytics.queries import named_queries

if TYPE_CHECKING:
    import duckdb

    from closedloop.local.demo import DemoRun

__all__ = [
    "ModelScore",
    "Report",
    "build_report",
    "closest_to_truth",
    "mean_abs_error",
    "render_html",
    "render_terminal",
    "spearman",
]

NO_WEB_TOUCH = "(no web touch)"
# The models of the named query revenue_by_channel_by_model, in its column order, with short labels;
# each has a revenue column named after it and a pipeline column ``pipeline_<model>``.
MODEL_LABELS: dict[str, str] = {
    "first_touch": "first",
    "last_touch": "last",
    "last_non_direct": "last n-d",
    "linear": "linear",
    "time_decay": "decay",
    "position_based": "U",
    "w_shaped": "W",
    "full_path": "Z",
    "j_shaped": "J",
    "inverse_j_shaped": "inv J",
    "markov": "markov",
    "shapley": "shapley",
}
DATA_DRIVEN = ("markov", "shapley")
PALETTE = ("#1f4e79", "#c0504d", "#e69f00", "#009e73", "#6a3d9a", "#56b4e9", "#d55e00", "#999999")


# --- scores -------------------------------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    ra, rb = _ranks(a), _ranks(b)
    n = len(ra)
    if n < 2:
        return 0.0
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else 0.0


def mean_abs_error(a: Sequence[float], b: Sequence[float]) -> float:
    """Mean absolute difference of two share vectors."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / max(len(a), 1)


@dataclass(frozen=True)
class ModelScore:
    """How close a model's revenue shares by channel are to the true shares."""

    model: str
    spearman: float  # rank correlation with the truth (1 = same order)
    mae: float  # mean absolute share error, in share points (0.05 = 5 points)


def score_models(truth: dict[str, float], shares: dict[str, dict[str, float]]) -> list[ModelScore]:
    """Score every model against the truth over the channels either side names; best (lowest error) first."""
    channels = sorted(set(truth) | {c for s in shares.values() for c in s} - {NO_WEB_TOUCH})
    expected = [truth.get(c, 0.0) for c in channels]
    scores = []
    for model, by_channel in shares.items():
        got = [by_channel.get(c, 0.0) for c in channels]
        scores.append(ModelScore(model, spearman(expected, got), mean_abs_error(expected, got)))
    return sorted(scores, key=lambda s: (s.mae, -s.spearman, s.model))


# --- the report ---------------------------------------------------------------------------------------


def _rows(sql: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cursor = sql.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class Report:
    """Everything the terminal and the HTML show; ``as_dict`` is ``report.json``."""

    facts: dict[str, Any]
    revenue: list[dict[str, Any]]
    funnel: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    roas: list[dict[str, Any]]
    pipeline: list[dict[str, Any]]
    truth: dict[str, float]
    shares: dict[str, dict[str, float]]
    scores: list[ModelScore]
    timings: dict[str, float] = field(default_factory=dict)

    def score(self, model: str) -> ModelScore:
        return next(s for s in self.scores if s.model == model)

    def as_dict(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "timings": self.timings,
            "truth": self.truth,
            "shares": self.shares,
            "scores": {s.model: {"spearman": s.spearman, "mae": s.mae} for s in self.scores},
            "revenue_by_channel_by_model": self.revenue,
            "funnel_by_channel": self.funnel,
            "top_campaigns_by_model": self.campaigns,
            "roas_by_campaign": self.roas,
            "pipeline_by_stage_and_source": self.pipeline,
        }


def build_report(sql: duckdb.DuckDBPyConnection, run: DemoRun, truth: dict[str, float]) -> Report:
    """Run the named queries (the Athena SQL, unchanged) and score every model against the truth."""
    results = {q.name: _rows(sql, q.sql) for q in named_queries()}
    shares: dict[str, dict[str, float]] = defaultdict(dict)
    totals: dict[str, float] = defaultdict(float)
    per_model = _rows(
        sql,
        "SELECT model, channel, SUM(revenue_credit) AS revenue "
        "FROM closedloop.attribution_credits GROUP BY model, channel",
    )
    for row in per_model:
        totals[row["model"]] += row["revenue"] or 0.0
    for row in per_model:
        if totals[row["model"]] and row["channel"] != NO_WEB_TOUCH:
            shares[row["model"]][row["channel"]] = (row["revenue"] or 0.0) / totals[row["model"]]
    outcomes = {o: sum(1 for d in run.deals if d.outcome == o) for o in ("won", "lost", "open")}
    facts = {
        "site": "Acme Analytics (synthetic)",
        "seed": run.seed,
        "days": run.days,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "visitors": len(run.visitors),
        "sessions": run.sessions,
        "page_views": run.page_views,
        "leads": len(run.leads),
        "second_devices": run.second_devices,
        "deals": len(run.deals),
        "deals_by_outcome": outcomes,
        "revenue_won": float(sum(d.amount for d in run.deals if d.outcome == "won")),
        "pipeline_open": float(sum(d.amount for d in run.deals if d.outcome == "open")),
        "deliveries": dict(run.deliveries),
        "retries": run.retries,
        "out_of_order": run.out_of_order,
        "out_of_order_deal": run.out_of_order_deal,
        "refused": run.refused,
        "spend_rows": run.spend_rows,
        "job": run.job,
    }
    return Report(
        facts=facts,
        revenue=results["revenue_by_channel_by_model"],
        funnel=results["funnel_by_channel"],
        campaigns=results["top_campaigns_by_model"],
        roas=results["roas_by_campaign"],
        pipeline=results["pipeline_by_stage_and_source"],
        truth=truth,
        shares=dict(shares),
        scores=score_models(truth, dict(shares)),
    )


# --- terminal -----------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    if abs(value) >= 1_000:
        return f"${value / 1_000:.1f}k"
    return f"${value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _funnel_rows(report: Report) -> list[list[str]]:
    """The funnel's cells, as the terminal and the HTML report both show them."""
    return [
        [
            r["channel"],
            f"{r['visits']:.0f}",
            f"{r['leads']:.0f}",
            f"{r['opportunities']:.0f}",
            f"{r['customers']:.0f}",
            _pct(r["visit_to_lead"]),
            _pct(r["lead_to_opportunity"]),
            _pct(r["opportunity_to_customer"]),
        ]
        for r in report.funnel
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], first_width: int = 18) -> str:
    widths = [
        max([first_width if i == 0 else 0, len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("─" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _revenue_models(report: Report) -> list[str]:
    return [m for m in MODEL_LABELS if report.revenue and m in report.revenue[0]]


def _pipeline_models(report: Report) -> list[str]:
    return [m for m in MODEL_LABELS if report.revenue and f"pipeline_{m}" in report.revenue[0]]


def _truth_channels(report: Report) -> list[str]:
    return sorted(report.truth, key=lambda c: -report.truth[c])


def _beats(model: ModelScore, last: ModelScore) -> bool:
    return model.mae < last.mae and model.spearman > last.spearman


def closest_to_truth(report: Report) -> str:
    """Which model recovers the true channel mix best here, said plainly (it need not be data-driven)."""
    best = report.scores[0]
    kind = (
        "a data-driven model"
        if best.model in DATA_DRIVEN
        else "a rule-based model: its fixed rule happens to suit how this synthetic company's journeys "
        "were generated, which a real company's need not"
    )
    return (
        f"Closest to the truth on this synthetic company: {best.model} (error {100 * best.mae:.1f} pts, "
        f"rank corr. {best.spearman:+.2f}), {kind}."
    )


def render_terminal(report: Report) -> str:
    """The compact terminal report."""
    f = report.facts
    outcome = f["deals_by_outcome"]
    deliveries = ", ".join(f"{crm} {n}" for crm, n in sorted(f["deliveries"].items()))
    out = [
        "",
        f"━━ Closedloop demo: {f['site']}, {f['days']} days, seed {f['seed']} ━━",
        f"{f['visitors']} visitors, {f['sessions']} sessions, {f['page_views']} page views "
        f"-> {f['leads']} leads "
        f"({f['second_devices']} on a second device) -> {f['deals']} deals: {outcome['won']} won "
        f"({_money(f['revenue_won'])}), {outcome['lost']} lost, {outcome['open']} open",
        f"CRM deliveries: {deliveries} ({f['retries']} retries, {f['out_of_order']} out of order, "
        f"{f['refused']} refused)",
        "",
        "Revenue by channel under every model (named query revenue_by_channel_by_model)",
    ]
    models = _revenue_models(report)
    rows = [[r["channel"], *(_money(r[m]) for m in models)] for r in report.revenue]
    out.append(_table(["channel", *(MODEL_LABELS[m] for m in models)], rows))
    out += ["", "Open pipeline by channel under every model (same query, pipeline_<model> columns)"]
    pipeline_models = _pipeline_models(report)
    rows = [[r["channel"], *(_money(r[f"pipeline_{m}"]) for m in pipeline_models)] for r in report.revenue]
    out.append(_table(["channel", *(MODEL_LABELS[m] for m in pipeline_models)], rows))

    out += ["", "Funnel by lead source (funnel_by_channel; leads and later by lead-creation channel)"]
    rows = _funnel_rows(report)
    out.append(
        _table(["channel", "visits", "leads", "opps", "customers", "visit>lead", "lead>opp", "opp>won"], rows)
    )

    out += ["", "Top campaigns (top_campaigns_by_model)"]
    rows = [
        [
            str(r["campaign"])[:24],
            r["channel"],
            _money(r["first_touch"]),
            _money(r["last_touch"]),
            _money(r["markov"]),
            _money(r["shapley"]),
        ]
        for r in report.campaigns[:8]
    ]
    out.append(_table(["campaign", "channel", "first", "last", "markov", "shapley"], rows, first_width=22))

    if report.roas:
        out += ["", "Return on ad spend, Markov credit (roas_by_campaign)"]
        rows = [
            [
                str(r["campaign"])[:24],
                r["channel"],
                _money(r["cost"]),
                _money(r["revenue"]),
                "-" if r["roas"] is None else f"{r['roas']:.1f}x",
                _money(r["cost_per_lead"]),
                _money(r["customer_acquisition_cost"]),
            ]
            for r in report.roas
        ]
        out.append(
            _table(["campaign", "channel", "spend", "revenue", "ROAS", "CPL", "CAC"], rows, first_width=22)
        )

    out += ["", "Ground truth: each channel's true share of revenue vs what the models credit"]
    shown = ["last_touch", "first_touch", "linear", "markov", "shapley"]
    rows = [
        [c, _pct(report.truth[c]), *(_pct(report.shares.get(m, {}).get(c, 0.0)) for m in shown)]
        for c in _truth_channels(report)
    ]
    out.append(_table(["channel", "TRUE", *(MODEL_LABELS[m] for m in shown)], rows))
    rows = [[s.model, f"{s.spearman:+.2f}", f"{100 * s.mae:.1f} pts"] for s in report.scores]
    out += ["", _table(["model (best first)", "rank corr.", "mean abs. error"], rows)]
    last = report.score("last_touch")
    verdict = ", ".join(
        f"{m} {'beats' if _beats(report.score(m), last) else 'does not beat'} last touch"
        for m in DATA_DRIVEN
        if m in report.shares
    )
    out.append(
        f"→ {verdict} (error {', '.join(f'{100 * report.score(m).mae:.1f}' for m in DATA_DRIVEN)} vs "
        f"{100 * last.mae:.1f} pts; rank corr. "
        f"{', '.join(f'{report.score(m).spearman:+.2f}' for m in DATA_DRIVEN)} vs {last.spearman:+.2f})"
    )
    out.append(f"→ {closest_to_truth(report)}")
    return "\n".join(out)


# --- HTML ---------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value))


def bar_chart(
    chart_id: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    fmt: Any = _money,
    width: int = 640,
    bar: int = 11,
    label_width: int = 150,
    colors: Sequence[str] = PALETTE,
    title: str = "",
) -> str:
    """A horizontal grouped bar chart as inline SVG: one group per category, one bar per series."""
    group = bar * len(series) + 8
    legend = 22 if len(series) > 1 else 0
    height = legend + group * len(categories) + 6
    peak = max([v for _, values in series for v in values] + [0.0]) or 1.0
    plot = width - label_width - 70
    parts = [
        f'<svg class="chart" id="{_e(chart_id)}" role="img" aria-label="{_e(title or chart_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    if title:
        parts.append(f"<title>{_e(title)}</title>")
    x = label_width
    for index, (name, _) in enumerate(series if len(series) > 1 else []):
        color = colors[index % len(colors)]
        parts.append(
            f'<rect class="key" x="{x}" y="4" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="13" class="legend">{_e(name)}</text>'
        )
        x += 24 + 7 * len(name)
    for row, category in enumerate(categories):
        top = legend + row * group
        parts.append(
            f'<text x="{label_width - 6}" y="{top + group / 2 + 2}" text-anchor="end" class="label">'
            f"{_e(category)}</text>"
        )
        for index, (name, values) in enumerate(series):
            value = values[row]
            length = max(plot * value / peak, 0.0)
            y = top + index * bar + 2
            color = colors[index % len(colors)]
            parts.append(
                f'<rect class="bar" x="{label_width}" y="{y}" width="{length:.1f}" height="{bar - 2}" '
                f'fill="{color}"><title>{_e(category)} · {_e(name)}: {_e(fmt(value))}</title></rect>'
            )
            parts.append(
                f'<text x="{label_width + length + 4:.1f}" y="{y + bar - 3}" class="value">'
                f"{_e(fmt(value))}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], klass: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{klass}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;margin:0;
background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 6px}
.sub{color:#5b6b7c;margin:0 0 18px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;padding:18px 20px;margin:0 0 18px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 18px}
.kpi{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;padding:12px 16px;min-width:120px}
.kpi b{display:block;font-size:22px}.kpi span{color:#5b6b7c;font-size:12px;text-transform:uppercase}
.explain{color:#4a5866;max-width:860px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:10px 18px}
.grid h3{font-size:14px;margin:8px 0 2px}
svg.chart{max-width:100%;height:auto}
svg .label,svg .legend{font-size:12px;fill:#1d2733}svg .value{font-size:11px;fill:#5b6b7c}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}
th,td{padding:4px 8px;text-align:right;border-bottom:1px solid #e6eaef}
th:first-child,td:first-child{text-align:left}th{background:#f0f3f7;font-weight:600}
.best td{background:#e8f6ee}
.callout{background:#eef5fc;border-left:4px solid #1f4e79;padding:10px 14px;margin:10px 0}
footer{color:#7b8896;font-size:12px;text-align:center;margin:24px 0}
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script)."""
    f = report.facts
    outcome = f["deals_by_outcome"]
    models = _revenue_models(report)
    channels = [r["channel"] for r in report.revenue]
    last = report.score("last_touch")
    kpis = [
        ("visitors", f["visitors"]),
        ("sessions", f["sessions"]),
        ("leads", f["leads"]),
        ("deals", f["deals"]),
        ("won", outcome["won"]),
        ("revenue won", _money(f["revenue_won"])),
        ("CRM deliveries", sum(f["deliveries"].values())),
    ]
    total_spend = sum(r["cost"] or 0 for r in report.roas)
    total_roas_revenue = sum(r["revenue"] or 0 for r in report.roas)
    if total_spend:
        kpis.append(("paid ROAS (markov)", f"{total_roas_revenue / total_spend:.1f}x"))

    # 1. The answer first: truth vs models.
    truth_channels = _truth_channels(report)
    compared = ["last_touch", "linear", "markov", "shapley"]
    truth_chart = bar_chart(
        "truth-vs-models",
        truth_channels,
        [
            ("true share", [report.truth[c] for c in truth_channels]),
            *(
                (MODEL_LABELS[m], [report.shares.get(m, {}).get(c, 0.0) for c in truth_channels])
                for m in compared
            ),
        ],
        fmt=_pct,
        colors=("#222222", "#c0504d", "#999999", "#1f4e79", "#009e73"),
        bar=9,
        title="True revenue share by channel vs the models' credit",
    )
    score_chart = bar_chart(
        "model-error",
        [s.model for s in report.scores],
        [("mean absolute share error", [s.mae for s in report.scores])],
        fmt=lambda v: f"{100 * v:.1f} pts",
        colors=("#6a3d9a",),
        title="Error against the truth, by model",
    )
    score_rows = [[s.model, f"{s.spearman:+.2f}", f"{100 * s.mae:.1f} pts"] for s in report.scores]

    # 2. Revenue by channel, one small chart per model (same channels, each model's own scale).
    panels = "".join(
        f"<div><h3>{_e(m.replace('_', ' '))}</h3>"
        + bar_chart(
            f"revenue-{m}",
            channels,
            [(m, [float(r[m] or 0) for r in report.revenue])],
            width=340,
            bar=12,
            label_width=110,
            colors=(PALETTE[0] if m not in DATA_DRIVEN else "#009e73",),
            title=f"Revenue by channel, {m}",
        )
        + "</div>"
        for m in models
    )
    revenue_rows = [[r["channel"], *(_money(r[m]) for m in models)] for r in report.revenue]
    pipeline_models = _pipeline_models(report)
    open_pipeline_rows = [
        [r["channel"], *(_money(r[f"pipeline_{m}"]) for m in pipeline_models)] for r in report.revenue
    ]
    pipeline_table = _html_table(
        ["channel", *(MODEL_LABELS[m] for m in pipeline_models)], open_pipeline_rows, "pipeline-by-model"
    )

    # 3. Funnel.
    funnel_channels = [r["channel"] for r in report.funnel]
    funnel_chart = bar_chart(
        "funnel-rates",
        funnel_channels,
        [
            ("visit → lead", [r["visit_to_lead"] or 0.0 for r in report.funnel]),
            ("lead → opportunity", [r["lead_to_opportunity"] or 0.0 for r in report.funnel]),
            ("opportunity → customer", [r["opportunity_to_customer"] or 0.0 for r in report.funnel]),
        ],
        fmt=_pct,
        bar=9,
        colors=("#56b4e9", "#1f4e79", "#009e73"),
        title="Conversion rates by lead source",
    )
    totals = [
        ("visits", sum(r["visits"] or 0 for r in report.funnel)),
        ("leads", sum(r["leads"] or 0 for r in report.funnel)),
        ("opportunities", sum(r["opportunities"] or 0 for r in report.funnel)),
        ("customers", sum(r["customers"] or 0 for r in report.funnel)),
    ]
    overall = bar_chart(
        "funnel-overall",
        [name for name, _ in totals],
        [("all channels", [v for _, v in totals])],
        fmt=lambda v: f"{v:,.0f}",
        colors=("#1f4e79",),
        title="The funnel, all channels",
    )
    funnel_rows = _funnel_rows(report)

    # 4. Campaigns and ROAS.
    top = report.campaigns[:10]
    campaign_chart = bar_chart(
        "top-campaigns",
        [f"{r['campaign']} ({r['channel']})" for r in top],
        [
            ("first touch", [r["first_touch"] or 0.0 for r in top]),
            ("last touch", [r["last_touch"] or 0.0 for r in top]),
            ("markov", [r["markov"] or 0.0 for r in top]),
            ("shapley", [r["shapley"] or 0.0 for r in top]),
        ],
        label_width=230,
        width=720,
        bar=8,
        colors=("#e69f00", "#c0504d", "#1f4e79", "#009e73"),
        title="Revenue credited to the top campaigns",
    )
    roas_chart = (
        bar_chart(
            "roas",
            [f"{r['campaign']} ({r['channel']})" for r in report.roas],
            [("ROAS", [r["roas"] or 0.0 for r in report.roas])],
            fmt=lambda v: f"{v:.1f}x",
            label_width=230,
            width=720,
            colors=("#009e73",),
            title="Return on ad spend by campaign",
        )
        if report.roas
        else ""
    )
    roas_rows = [
        [
            r["campaign"],
            r["channel"],
            _money(r["cost"]),
            _money(r["revenue"]),
            "-" if r["roas"] is None else f"{r['roas']:.1f}x",
            _money(r["cost_per_lead"]),
            _money(r["customer_acquisition_cost"]),
        ]
        for r in report.roas
    ]
    pipeline_rows = [
        [r["stage"], r["channel"], r["source"], r["deals"], _money(r["pipeline_credited"])]
        for r in report.pipeline[:15]
    ]

    deliveries = ", ".join(f"{crm}: {n}" for crm, n in sorted(f["deliveries"].items()))
    beaten = [m for m in DATA_DRIVEN if report.score(m).mae < last.mae]
    errors = ", ".join(f"{100 * report.score(m).mae:.1f}" for m in DATA_DRIVEN)
    headline = (
        f"{' and '.join(beaten) or 'No data-driven model'} recover{'s' if len(beaten) == 1 else ''} the true "
        f"channel mix better than last touch: error {errors} points vs {100 * last.mae:.1f} for last touch."
    )
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
    kpi_html = "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in kpis)
    score_table = _html_table(["model", "rank correlation", "mean abs. error"], score_rows)
    funnel_table = _html_table(
        [
            "channel",
            "visits",
            "leads",
            "opportunities",
            "customers",
            "visit → lead",
            "lead → opp.",
            "opp. → won",
        ],
        funnel_rows,
    )
    roas_table = _html_table(
        ["campaign", "channel", "spend", "revenue", "ROAS", "cost per lead", "cost per customer"], roas_rows
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Closedloop demo report: which channels drive revenue</title><style>{CSS}</style></head>
<body><main>
<h1>Which channels really drive revenue?</h1>
<p class="sub">{_e(f["site"])} · the last {f["days"]} days · generated {_e(f["generated_at"])}
by <code>make demo</code>
(seed {f["seed"]})</p>
<div class="kpis">{kpi_html}</div>

<section id="truth"><h2>The answer, checked against the truth</h2>
<p class="explain">This company is synthetic, so we know what really works: each channel has a known effect
on the chance that a lead becomes a deal. Visitors typically discover the company through a campaign,
a partner
or a search, and come back directly or through a brand search before filling the form. Last touch gives those
closing visits the revenue; the data-driven models (Markov removal effect, Shapley) learn from leads that
did and
did not convert, and should get closer to the truth.</p>
<div class="callout">{_e(headline)}<br><b>{_e(closest_to_truth(report))}</b></div>
{truth_chart}
{score_chart}{score_table}
</section>

<section id="revenue"><h2>Revenue by channel under every model</h2>
<p class="explain">Named query <code>revenue_by_channel_by_model</code>: the revenue of won deals,
credited to the
channels of each deal's journey by each model. Green: data-driven models.</p>
<div class="grid">{panels}</div>
{_html_table(["channel", *(MODEL_LABELS[m] for m in models)], revenue_rows)}
<h3>Open pipeline by channel under every model</h3>
<p class="explain">The same query's <code>pipeline_&lt;model&gt;</code> columns: the amount of open deals,
credited to channels by each model.</p>
{pipeline_table}
</section>

<section id="funnel"><h2>The funnel by lead source</h2>
<p class="explain">Named query <code>funnel_by_channel</code>: visits by channel, then each lead counted
once, under the channel that brought it in (its lead-creation touch), and followed to an opportunity
(a deal) and to a customer (a won deal). No model credit here, so every rate is a share of the step
before.</p>
<div class="grid"><div>{overall}</div></div>{funnel_chart}
{funnel_table}
</section>

<section id="campaigns"><h2>Top campaigns</h2>
<p class="explain">Named query <code>top_campaigns_by_model</code>: which campaigns open journeys
(first touch),
close them (last touch), and which really move conversion (data-driven).</p>
{campaign_chart}
</section>

<section id="roas"><h2>Return on ad spend</h2>
<p class="explain">Named query <code>roas_by_campaign</code>: the ad platforms' cost (a CSV under
<code>spend/</code>) against the revenue the Markov model credits to each paid campaign.</p>
{roas_chart}
{roas_table}
</section>

<section id="pipeline"><h2>Open pipeline by stage and source</h2>
<p class="explain">Named query <code>pipeline_by_stage_and_source</code> (W-shaped credit).</p>
{_html_table(["stage", "channel", "source", "deals", "pipeline credited"], pipeline_rows)}
</section>

<section id="run"><h2>How this report was made</h2>
<p class="explain">{f["visitors"]} simulated visitors sent {f["page_views"]} page views in {f["sessions"]}
sessions to <code>POST /collect</code>; {f["leads"]} filled a form (<code>POST /identify</code>),
{f["second_devices"]}
also on a second device. The CRMs sent {sum(f["deliveries"].values())} signed deal events to
<code>POST /webhooks/{{crm}}</code> ({_e(deliveries)}), including {f["retries"]} retries and
{f["out_of_order"]}
out-of-order delivery; {f["refused"]} were refused. The attribute job then wrote the Parquet datasets,
and DuckDB ran
the Athena named queries on them unchanged. Timings: {_e(timings)}.</p>
</section>
<footer>Closedloop · self-hosted closed-loop attribution · this file works offline</footer>
</main></body></html>
"""
