"""Search toward the answer: a coarse grid first, then a budget of cluster minutes spent on the
loads that decide whether disaggregation beats replicas.

Round 0 is the profile's own campaign. Each later round is a campaign of its own, on a profile
derived from the first: only the layouts, engine and handoff variants, shapes and closed-loop
concurrencies that decide, namely

- a crossover: between two measured concurrencies where the best disaggregated setup of a layout
  minus the best replicated setup on as many devices changes sign (in output tokens/s per GPU,
  or in goodput per GPU at an SLO tier), the concurrency between them (geometric middle);
- a close call: where, at a tier, that disaggregated setup and its replicated rival are within
  the run-to-run spread at their best loads, one more repeat of both there.

A round is started only while its estimated length (the first round's minutes per run, times
its runs) fits in what is left of the budget; a round with nothing to decide ends the search.
The recommendation pools every round's runs: the same series at the same load in two rounds
are two repeats of one point.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from pdpipeline.errors import ProfileError
from pdpipeline.paths import WAREHOUSE_PATH
from pdpipeline.plan import plan_arms
from pdpipeline.profile import Profile, layout_counts, load_profile
from pdpipeline.report.compare import POINT_KEYS, SERIES_KEYS, with_current_columns
from pdpipeline.report.formats import load_label
from pdpipeline.report.recommend import recommendations
from pdpipeline.report.slo import goodput_by_tier, valid_runs
from pdpipeline.report.transport import spin_caveat
from pdpipeline.warehouse.rows import SearchRoundRow
from pdpipeline.warehouse.store import Warehouse

SHAPE = ["input_len", "output_len"]
THROUGHPUT = "output tok/s per GPU"


@dataclass(frozen=True)
class Decider:
    """One load to measure next, and why."""

    input_len: str
    output_len: str
    layout: str  # the disaggregated layout judged (its replicas are measured with it)
    engine_variant: str | None
    variant: str | None  # the handoff variant
    concurrency: int
    reason: str


def gaps(runs: pl.DataFrame, requests: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """Per measure (output tok/s per GPU, and goodput per GPU at each tier), shape, layout and
    closed-loop concurrency: the best disaggregated series of the layout, the best replicated
    series on as many devices, their means and spreads over repeats.

    Goodput at a load counts only where the load meets the tier; a load missing it serves 0."""
    runs = valid_runs(runs).filter(pl.col("concurrency").is_not_null())
    if runs.is_empty():
        return pl.DataFrame()
    point = [*SERIES_KEYS, *POINT_KEYS]
    measures = [
        runs.group_by(point)
        .agg(
            value=pl.col("output_throughput_per_gpu").mean(),
            spread=pl.col("output_throughput_per_gpu").std().fill_null(0.0),
            gpus=pl.col("gpus").max(),
            repeats=pl.len(),
        )
        .with_columns(measure=pl.lit(THROUGHPUT))
    ]
    goodput = goodput_by_tier(runs, requests, profile.tiers)
    if goodput.height:
        met = pl.when(pl.col("point_met")).then(pl.col("goodput_per_gpu")).otherwise(0.0)
        measures.append(
            goodput.with_columns(_good=met)
            .group_by(["tier", *point])
            .agg(
                value=pl.col("_good").mean(),
                spread=pl.col("_good").std().fill_null(0.0),
                gpus=pl.col("gpus").max(),
                repeats=pl.len(),
            )
            .with_columns(measure=pl.concat_str(pl.lit("goodput at "), "tier"))
            .drop("tier")
        )
    frame = pl.concat(measures, how="diagonal_relaxed")
    disaggregated = _best(frame.filter(pl.col("arm") == "disaggregated"), ["layout"])
    replicated = _best(frame.filter(pl.col("arm") == "replicated"), ["gpus"]).rename(
        {c: f"rival_{c}" for c in ("layout", "engine_variant", "value", "spread", "repeats")}
    )
    return disaggregated.join(
        replicated.drop("arm", "variant"),
        on=["measure", *POINT_KEYS, "gpus"],
        how="inner",
        nulls_equal=True,  # a closed-loop point's request_rate is null on both sides
    ).sort(["measure", *SHAPE, "layout", "concurrency"])


def _best(frame: pl.DataFrame, within: list[str]) -> pl.DataFrame:
    """The series with the highest value per measure, point and `within`."""
    keys = ["measure", *POINT_KEYS, *within]
    return frame.sort("value", descending=True).unique(keys, keep="first", maintain_order=True)


def deciders(gap: pl.DataFrame) -> list[Decider]:
    """The loads that decide, crossovers first (see the module's doc)."""
    found: dict[tuple, Decider] = {}
    if gap.is_empty():
        return []
    for (measure, input_len, output_len, layout), rows in gap.group_by(
        ["measure", *SHAPE, "layout"], maintain_order=True
    ):
        rows = rows.sort("concurrency")
        points = list(rows.iter_rows(named=True))
        for low, high in itertools.pairwise(points):
            below, above = _difference(low), _difference(high)
            if below == 0 or above == 0 or (below > 0) == (above > 0):
                continue
            middle = round(math.sqrt(low["concurrency"] * high["concurrency"]))
            if not low["concurrency"] < middle < high["concurrency"]:
                continue  # adjacent loads: nothing to measure between them
            winner = low if below > 0 else high
            key = (input_len, output_len, layout, middle)
            found.setdefault(
                key,
                Decider(
                    input_len,
                    output_len,
                    layout,
                    winner["engine_variant"],
                    winner["variant"],
                    middle,
                    f"{measure}: {layout} minus replicas is {below:+.3g} at "
                    f"{load_label(low['concurrency'], None)} and {above:+.3g} at "
                    f"{load_label(high['concurrency'], None)}",
                ),
            )
    for row in gap.filter(pl.col("measure") != THROUGHPUT).iter_rows(named=True):
        difference = _difference(row)
        spread = max(row["spread"], row["rival_spread"])
        close = row["value"] > 0 and (abs(difference) <= spread or row["repeats"] < 2)
        key = (row["input_len"], row["output_len"], row["layout"], row["concurrency"])
        if close and key not in found and _is_best_load(gap, row):
            found[key] = Decider(
                *key[:3],
                row["engine_variant"],
                row["variant"],
                row["concurrency"],
                f"{row['measure']}: {row['layout']} and its replicas within the run-to-run "
                f"spread ({difference:+.3g}) at {load_label(row['concurrency'], None)}: "
                "one more repeat",
            )
    return list(found.values())


def _difference(row: dict) -> float:
    return (row["value"] or 0.0) - (row["rival_value"] or 0.0)


def _is_best_load(gap: pl.DataFrame, row: dict) -> bool:
    """Whether `row` is the load where the disaggregated side serves most, for its measure,
    shape and layout: a close call elsewhere decides nothing."""
    same = gap.filter(
        (pl.col("measure") == row["measure"])
        & (pl.col("input_len") == row["input_len"])
        & (pl.col("output_len") == row["output_len"])
        & (pl.col("layout") == row["layout"])
    )
    return row["value"] >= same["value"].max()


def follow_up(data: dict, found: Sequence[Decider], name: str) -> dict:
    """The profile (as data) of a round measuring `found`: only their layouts, engine and
    handoff variants, shapes and concurrencies, with the replicas each layout sizes."""
    data = copy.deepcopy(data)
    data["name"] = name
    arms = data["arms"]
    arms.pop("single", None)
    d = arms["disaggregated"]
    layouts = sorted({f.layout for f in found}, key=lambda x: (sum(layout_counts(x)), x))
    if d.get("layouts"):
        d["layouts"] = layouts
    if d.get("variants"):
        # The variants' names as the profile resolves them (a nameless one is named after its
        # connector), in the order they are given.
        names = [v.name for v in Profile.model_validate(data).arms.disaggregated.handoff_variants]
        wanted = {f.variant for f in found}
        d["variants"] = [v for v, name in zip(d["variants"], names, strict=True) if name in wanted]
    if data.get("engine_variants"):
        wanted = {f.engine_variant for f in found}
        data["engine_variants"] = [e for e in data["engine_variants"] if e["name"] in wanted]
    shapes = {(f.input_len, f.output_len) for f in found}
    workload = data["workload"]
    workload["points"] = [
        p for p in workload["points"] if (str(p["input_len"]), str(p["output_len"])) in shapes
    ]
    workload["concurrency"] = sorted({f.concurrency for f in found})
    workload.pop("request_rates", None)
    workload.pop("rate_search", None)
    return data


@dataclass
class Round:
    campaign_id: str
    seconds: float
    runs: int
    deciders: tuple[Decider, ...]  # what it measured; none for round 0


# Runs a campaign on a profile file and returns its id: the pipeline in production, a test
# double in the search's own tests.
Measure = Callable[[str], str]
# The runs and requests of the given campaigns, pooled.
Load = Callable[[Sequence[str]], tuple[pl.DataFrame, pl.DataFrame]]


def warehouse_loader(warehouse: Warehouse) -> Load:
    """Pooled runs of the workload matrix and their requests: no rate-search runs, and no
    runs their campaign's KV cost fit found transport-degraded (they measured a broken link,
    not the setup; report/analysis.py leaves them out of the verdicts alike)."""

    def load(campaign_ids: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
        ids = list(campaign_ids)
        runs = warehouse.query(
            "SELECT * FROM runs WHERE list_contains(?, campaign_id) AND searched_for IS NULL "
            "AND run_id NOT IN (SELECT run_id FROM kv_cost_fit WHERE degraded)",
            [ids],
        )
        requests = warehouse.query(
            "SELECT q.* EXCLUDE (itl_s) FROM requests q JOIN runs r USING (run_id) "
            "WHERE list_contains(?, q.campaign_id) AND r.searched_for IS NULL",
            [ids],
        )
        return with_current_columns(runs), requests

    return load


def conclude(
    warehouse: Warehouse, rounds: Sequence[Round], profile: Profile, load: Load
) -> pl.DataFrame:
    """Store the rounds and the recommendation of their pooled runs under round 0's campaign;
    returns the recommendation."""
    root = rounds[0].campaign_id
    pooled = [r.campaign_id for r in rounds]
    runs, requests = load(pooled)
    goodput = goodput_by_tier(runs, requests, profile.tiers)
    # Rounds measured elsewhere (the search's test double) leave no warehouse file to read.
    servers = (
        warehouse.query(
            "SELECT * FROM launch_servers WHERE list_contains(?, campaign_id)", [pooled]
        )
        if warehouse.path.exists()
        else pl.DataFrame()
    )
    found = recommendations(goodput, root, pooled, spin_caveat(servers))
    round_rows = [
        SearchRoundRow(
            campaign_id=root,
            round=i,
            round_campaign_id=r.campaign_id,
            seconds=r.seconds,
            runs=r.runs,
            deciders=json.dumps([dataclasses.asdict(d) for d in r.deciders]),
        )
        for i, r in enumerate(rounds)
    ]
    warehouse.replace(
        {"search_rounds": round_rows, "recommendations": found},
        where={"campaign_id": root},
    )
    return found


def search(
    profile_path: str,
    measure: Measure,
    load: Load,
    budget_s: float,
    work_dir: Path,
    say: Callable[[str], None] = print,
    max_rounds: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> list[Round]:
    """Run round 0 on the profile, then rounds on the loads that decide while the budget
    lasts; returns the rounds run."""
    text = Path(profile_path).read_text()
    data = yaml.safe_load(text)
    profile = Profile.model_validate(data)
    if profile.arms.disaggregated is None or profile.arms.replicated is None:
        raise ProfileError(
            f"profile {profile_path}: a search needs the replicated and disaggregated arms"
        )
    started = clock()
    campaign_id = measure(profile_path)
    first = clock() - started
    runs, requests = load([campaign_id])
    rounds = [Round(campaign_id, first, runs.height, ())]
    per_run = first / max(1, runs.height)
    while len(rounds) < max_rounds:
        found = deciders(gaps(runs, requests, profile))
        if not found:
            say("search: nothing left to decide")
            break
        derived = follow_up(data, found, f"{profile.name}-search{len(rounds)}")
        estimate = per_run * _runs_in(derived)
        left = budget_s - (clock() - started)
        if estimate > left:
            say(
                f"search: round {len(rounds)} ({len(found)} load(s)) would take ~"
                f"{estimate / 60:.1f} min, {max(0.0, left) / 60:.1f} min left: stopping"
            )
            break
        for f in found:
            say(
                f"search: round {len(rounds)}: {f.input_len}/{f.output_len} "
                f"{load_label(f.concurrency, None)}: "
                f"{f.reason}"
            )
        path = work_dir / f"{derived['name']}.yaml"
        path.write_text(yaml.safe_dump(derived, sort_keys=False))
        round_started = clock()
        campaign_id = measure(str(path))
        runs, requests = load([r.campaign_id for r in rounds] + [campaign_id])
        rounds.append(Round(campaign_id, clock() - round_started, _runs_in(derived), tuple(found)))
    return rounds


def _runs_in(data: dict) -> int:
    """The closed-loop runs a profile's campaign makes."""
    profile = Profile.model_validate(data)
    launches = sum(len(plan_arms(profile, arm)) for arm in profile.enabled_arms)
    w = profile.workload
    return launches * len(w.points) * len(w.concurrency) * w.repeats


def run_search(
    profile_path: str,
    budget_minutes: float,
    measure: Callable[[str], str],
    warehouse_path: str | None = None,
    max_rounds: int = 4,
    say: Callable[[str], None] = print,
) -> tuple[list[Round], pl.DataFrame]:
    """The search with each round measured by `measure` (a derived profile's path -> the id of
    the campaign it ran), the recommendation of them all stored under round 0's campaign."""
    warehouse = Warehouse(warehouse_path or WAREHOUSE_PATH)
    profile = load_profile(profile_path).profile
    load = warehouse_loader(warehouse)
    with tempfile.TemporaryDirectory(prefix="pdpipeline-search-") as work_dir:
        rounds = search(
            profile_path, measure, load, budget_minutes * 60, Path(work_dir), say, max_rounds
        )
    return rounds, conclude(warehouse, rounds, profile, load)
