"""`pdpipeline`: proxy, bench, plan, kv-cache, tiny-model, sql, campaign, search, report, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from pdpipeline.errors import PdPipelineError
from pdpipeline.paths import LOGS_DIR, REPORTS_DIR, WAREHOUSE_PATH, reports_dir

if TYPE_CHECKING:
    from pdpipeline.warehouse.store import Warehouse


def _proxy(args: argparse.Namespace) -> None:
    from pdpipeline.serving.proxy import KvPeer, Proxy, serve

    try:
        import uvloop  # vLLM ships it; the proxy's hot path is event-loop bound

        uvloop.install()
    except ImportError:
        pass
    proxy = Proxy(
        args.backend,
        args.prefill,
        args.decode,
        instance_token=args.instance_token,
        handoff=args.handoff,
        prefill_peers=[KvPeer.parse(text, args.kv_tp_size) for text in args.prefill_peer],
        leg_timeout_s=args.leg_timeout_s,
    )
    asyncio.run(serve(proxy, args.host, args.port))


def _bench(args: argparse.Namespace) -> None:
    from pdpipeline.loadgen.bench import bench, write_records
    from pdpipeline.loadgen.client import Client
    from pdpipeline.loadgen.schedule import Load
    from pdpipeline.loadgen.stats import format_summary
    from pdpipeline.loadgen.window import Sizing
    from pdpipeline.loadgen.workload import (
        RequestStream,
        build_requests,
        iter_requests,
        load_prompt_source,
    )
    from pdpipeline.profile import Lengths, SloTier

    source = load_prompt_source(args.tokenizer, args.api)
    input_len, output_len = Lengths.parse(args.input_len), Lengths.parse(args.output_len)
    requests = RequestStream(iter_requests(source, input_len, output_len, args.seed, "bench"))
    warmup = build_requests(source, args.warmup, input_len, output_len, args.seed, "warmup")
    sizing = Sizing(
        min_window_s=args.min_window_s,
        min_window_requests=args.min_window_requests,
        max_requests=max(args.max_requests, args.num_requests),
        min_requests=args.num_requests,
        warmup_share=args.warmup_share,
    )
    load = Load(
        concurrency=args.concurrency,
        request_rate=args.request_rate,
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        duration_s=args.duration,
    )
    metrics_urls = {url: url for url in args.metrics_url}

    async def run():
        async with Client(args.url, args.model, args.api) as client:
            return await bench(
                client,
                requests,
                load,
                warmup,
                metrics_urls,
                args.gpus,
                SloTier(ttft_ms=args.slo_ttft_ms, tpot_ms=args.slo_tpot_ms),
                args.seed,
                sizing,
            )

    result = asyncio.run(run())
    print(format_summary(result.summary))
    if args.out:
        print(f"rows: {write_records(result.records, args.out)}")
    if not result.summary["valid"]:
        sys.exit(1)


def _kv_cache(args: argparse.Namespace) -> None:
    from pdpipeline.kvcache import format_table, kv_cache_json, kv_layout, load_config

    layout = kv_layout(load_config(args.config), args.kv_dtype)
    if args.json:
        print(json.dumps(kv_cache_json(layout, args.tokens)))
    else:
        print(format_table(layout, args.tokens))


def _tiny_model(args: argparse.Namespace) -> None:
    from pdpipeline.serving.tinymodel import build_tiny_model, is_built

    if is_built(args.out) and not args.force:
        print(f"tiny model already at {args.out}")
        return
    print(f"tiny model written to {build_tiny_model(args.out)}")


def _plan(args: argparse.Namespace) -> None:
    from pdpipeline.plan import format_plan
    from pdpipeline.profile import load_profile

    print(format_plan(load_profile(args.profile).profile))


def _campaign(args: argparse.Namespace) -> None:
    from pdpipeline.defs.campaign import run_campaign
    from pdpipeline.profile import load_profile
    from pdpipeline.report.markdown import comparison as markdown
    from pdpipeline.report.verdict import headline, verdicts
    from pdpipeline.warehouse.store import Warehouse

    load_profile(args.profile)  # a bad profile is one clear line here, before Dagster starts
    campaign = run_campaign(args.profile, assets=args.assets, campaign_id=args.campaign)
    if args.assets:  # some assets of an existing campaign, not a new one
        print(f"materialized {', '.join(args.assets)} for campaign {campaign.id}")
        return
    warehouse = Warehouse()
    table = warehouse.query("SELECT * FROM comparison WHERE campaign_id = ?", [campaign.id])
    found = warehouse.query("SELECT * FROM recommendations WHERE campaign_id = ?", [campaign.id])
    print(f"\ncampaign {campaign.id}")
    _print_recommendation(found)
    print(f"\n{headline(verdicts(table))}\n\n{markdown(table)}\n")
    report = reports_dir(warehouse.path) / campaign.id / "report.html"
    print(f"report: {report.resolve()}")
    print(
        f'warehouse: {warehouse.path.resolve()}  (pdpipeline sql "SELECT * FROM latest_comparison")'
    )
    print(f"server logs: {LOGS_DIR / campaign.id}/")


def _search(args: argparse.Namespace) -> None:
    from pdpipeline.defs.search import search_campaigns
    from pdpipeline.profile import load_profile

    load_profile(args.profile)  # a bad profile is one clear line here, before Dagster starts
    rounds, found = search_campaigns(args.profile, args.budget_minutes, max_rounds=args.max_rounds)
    print(f"\nsearch {rounds[0].campaign_id}: {len(rounds)} round(s)")
    for i, r in enumerate(rounds):
        print(f"  round {i}: campaign {r.campaign_id}, {r.runs} runs, {r.seconds / 60:.1f} min")
    _print_recommendation(found)
    print(
        '\n(pdpipeline sql "SELECT * FROM recommendations WHERE campaign_id = '
        f"'{rounds[0].campaign_id}'\" for the evidence run ids)"
    )


def _print_recommendation(found) -> None:
    """The `recommendations` rows' sentences, then their caveats, once each."""
    from pdpipeline.report.transport import caveat_lines

    print("\nrecommendation:")
    for sentence in [*found["sentence"], *caveat_lines(found["caveat"])]:
        print(f"- {sentence}")


def _warehouse(path: str) -> Warehouse:
    """The warehouse file at `path`; a missing one is a one-line error naming it."""
    from pdpipeline.warehouse.store import Warehouse

    warehouse = Warehouse(path)
    if not warehouse.path.is_file():
        raise PdPipelineError(f"no warehouse at {warehouse.path}: run a campaign first")
    return warehouse


def _stored_campaign(warehouse: Warehouse, campaign: str | None) -> str:
    """`campaign`, or the latest one, checked to be in the warehouse."""
    from pdpipeline.campaign import latest_campaign_id, load_campaign
    from pdpipeline.errors import CampaignNotFoundError

    if campaign is None:
        return latest_campaign_id(warehouse)
    if load_campaign(warehouse, campaign) is None:
        raise CampaignNotFoundError(f"no campaign {campaign} in {warehouse.path}")
    return campaign


def _sql(args: argparse.Namespace) -> None:
    import duckdb

    try:
        columns, rows = _warehouse(args.warehouse).execute_readonly(args.query)
    except duckdb.Error as e:  # the user's SQL: DuckDB's message, on one line
        raise PdPipelineError(" ".join(str(e).split())) from e
    print(format_rows(columns, rows))


def _report(args: argparse.Namespace) -> None:
    from pdpipeline.report.analysis import analysed
    from pdpipeline.report.build import render

    warehouse = _warehouse(args.warehouse)
    campaign = _stored_campaign(warehouse, args.campaign)
    out = args.out or reports_dir(warehouse.path) / campaign
    report = render(analysed(warehouse, campaign), out)
    print(f"{report.summary_md}\n\nreport: {report.html_path}")


def _export(args: argparse.Namespace) -> None:
    from pdpipeline.report.export import export_campaign

    warehouse = _warehouse(args.warehouse)
    campaign = _stored_campaign(warehouse, args.campaign)
    report = export_campaign(warehouse, campaign, args.out)
    print(f"campaign {campaign} exported to {report.directory} (report: {report.html_path})")


def format_rows(columns: list[str], rows: list[tuple]) -> str:
    """A plain aligned text table."""
    cells = [columns] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} rows)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pdpipeline", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    proxy = commands.add_parser("proxy", help="round-robin or prefill/decode proxy")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--port", type=int, required=True)
    proxy.add_argument("--backend", action="append", default=[], metavar="URL")
    proxy.add_argument("--prefill", action="append", default=[], metavar="URL")
    proxy.add_argument("--decode", action="append", default=[], metavar="URL")
    proxy.add_argument(
        "--handoff",
        choices=["sequential", "concurrent"],
        default="sequential",
        help="prefill then decode (pull or push), or both at once (push only)",
    )
    proxy.add_argument(
        "--prefill-peer",
        action="append",
        default=[],
        metavar="ENGINE_ID@HOST:PORT",
        help="a prefill's pinned NIXL engine id and side channel, in --prefill order (concurrent)",
    )
    proxy.add_argument("--kv-tp-size", type=int, default=1, help="prefill tensor parallel size")
    proxy.add_argument("--leg-timeout-s", type=float, default=300.0, help="limit for each leg")
    proxy.add_argument("--instance-token", default="", help="echoed by /health (launch check)")
    proxy.set_defaults(func=_proxy)

    bench = commands.add_parser("bench", help="streaming load generator")
    bench.add_argument("--url", required=True, help="base URL of the server or proxy")
    bench.add_argument("--model", required=True, help="served model name")
    bench.add_argument("--tokenizer", required=True, help="model dir (tokenizer or config.json)")
    bench.add_argument("--api", choices=["completions", "chat"], default="completions")
    bench.add_argument("--input-len", default="128", help="N or LO:HI (uniform)")
    bench.add_argument("--output-len", default="32", help="N or LO:HI (uniform)")
    # A run lasts until its steady window has both minimums (and --num-requests were sent),
    # or until --max-requests; the figures cover that window.
    bench.add_argument("--num-requests", type=int, default=1, help="send at least this many")
    bench.add_argument("--min-window-s", type=float, default=20.0, help="steady window, seconds")
    bench.add_argument(
        "--min-window-requests", type=int, default=32, help="requests started in the window"
    )
    bench.add_argument("--max-requests", type=int, default=2000, help="never send more")
    bench.add_argument(
        "--warmup-share", type=float, default=0.1, help="open loop: arrival period left out"
    )
    load = bench.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", type=int, help="closed loop")
    load.add_argument("--request-rate", type=float, help="open loop, requests/s")
    bench.add_argument("--burstiness", type=float, default=1.0, help="gamma shape; 1 = Poisson")
    bench.add_argument("--max-concurrency", type=int)
    bench.add_argument("--duration", type=float, help="stop starting requests after seconds")
    bench.add_argument("--warmup", type=int, default=4)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--gpus", type=int, default=1)
    bench.add_argument("--slo-ttft-ms", type=float, default=500.0)
    bench.add_argument("--slo-tpot-ms", type=float, default=50.0)
    bench.add_argument("--metrics-url", action="append", default=[], metavar="URL")
    bench.add_argument("--out", help="per-request rows: .parquet or .jsonl")
    bench.set_defaults(func=_bench)

    kv = commands.add_parser("kv-cache", help="KV cache bytes from a model config.json")
    kv.add_argument("config")
    kv.add_argument("--kv-dtype", default="auto")
    kv.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 2048, 4096])
    kv.add_argument("--json", action="store_true")
    kv.set_defaults(func=_kv_cache)

    plan = commands.add_parser("plan", help="print what a profile would launch; launch nothing")
    plan.add_argument("profile")
    plan.set_defaults(func=_plan)

    campaign = commands.add_parser("campaign", help="materialize every asset on a profile")
    campaign.add_argument("profile", nargs="?", default="profiles/local.yaml")
    campaign.add_argument(
        "--assets",
        nargs="+",
        metavar="ASSET",
        help="only these, arm by arm (e.g. single_node_run): of the latest stored campaign, or "
        "of a new one when hardware_check is among them",
    )
    campaign.add_argument(
        "--campaign",
        metavar="ID",
        help="the campaign (partition key) to materialize instead",
    )
    campaign.set_defaults(func=_campaign)

    search = commands.add_parser(
        "search",
        help="a campaign, then rounds on the loads that decide, within a budget",
    )
    search.add_argument("profile")
    search.add_argument(
        "--budget-minutes",
        type=float,
        default=60.0,
        help="cluster time the rounds may take, the first round included (default 60)",
    )
    search.add_argument("--max-rounds", type=int, default=4)
    search.set_defaults(func=_search)

    sql = commands.add_parser("sql", help="read-only SQL on the warehouse")
    sql.add_argument("query")
    sql.add_argument("--warehouse", default=str(WAREHOUSE_PATH))
    sql.set_defaults(func=_sql)

    report = commands.add_parser("report", help="plots and HTML report of a campaign")
    report.add_argument("campaign", nargs="?", help="campaign id (default: the latest)")
    report.add_argument("--warehouse", default=str(WAREHOUSE_PATH))
    report.add_argument("--out", help=f"default: {REPORTS_DIR}/CAMPAIGN/")
    report.set_defaults(func=_report)

    export = commands.add_parser("export", help="a campaign's tables as CSV/parquet, with report")
    export.add_argument("campaign", nargs="?", help="campaign id (default: the latest)")
    export.add_argument("--warehouse", default=str(WAREHOUSE_PATH))
    export.add_argument("--out", required=True)
    export.set_defaults(func=_export)

    tiny = commands.add_parser("tiny-model", help="build the tiny local model dir")
    tiny.add_argument("--out", default="models/tiny-llama")
    tiny.add_argument("--force", action="store_true")
    tiny.set_defaults(func=_tiny_model)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except PdPipelineError as e:
        print(f"pdpipeline: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
