"""The crossover search: which loads decide, the profile of a round, the rounds within a budget,
and the recommendation stored; measured on a test double of known crossover."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from pdpipeline.cli import main
from pdpipeline.profile import Profile
from pdpipeline.search import THROUGHPUT, conclude, deciders, follow_up, gaps, search
from pdpipeline.warehouse.store import Warehouse
from tests.support.local import local_profile_data, search_profile_data

CROSSOVER = 16  # the double's disaggregated setup beats its replicas above this concurrency
WINDOW_S = 10.0


def serves(arm: str, engine: str | None, variant: str | None, concurrency: int) -> float:
    """Requests/s per GPU of the double: replicas flat; disaggregation (pull, block128 best)
    growing with load and crossing its replicas at CROSSOVER."""
    if arm != "disaggregated":
        return 10.0 if arm == "replicated" else 12.0
    scale = (concurrency / CROSSOVER) ** 0.5
    return 10.0 * scale * (1.0 if (engine, variant) == ("block128", "pull") else 0.8)


class DoubleCluster:
    """A test double of the pipeline: measuring a profile stores, per series of the profile,
    runs whose figures follow `serves`, every request meeting the tier."""

    def __init__(self) -> None:
        self.campaigns: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}
        self.profiles: list[dict] = []

    def measure(self, path: str) -> str:
        data = yaml.safe_load(Path(path).read_text())
        self.profiles.append(data)
        profile = Profile.model_validate(data)
        campaign_id = f"round-{len(self.campaigns)}"
        runs, requests = [], []
        for arm in profile.enabled_arms:
            handoffs = (
                [v.name for v in profile.arms.disaggregated.handoff_variants]
                if arm == "disaggregated"
                else [None]
            )
            for engine in profile.engines:
                for layout in profile.layouts(arm):
                    gpus = len(profile.instances(arm, layout))
                    for variant in handoffs:
                        for point in profile.workload.points:
                            for c in profile.workload.concurrency:
                                for repeat in range(profile.workload.repeats):
                                    run_id = f"{campaign_id}/{arm}-{layout}-{engine.name}-"
                                    run_id += f"{variant}/c{c}-{repeat}"
                                    rate = serves(arm, engine.name, variant, c)
                                    runs.append(
                                        {
                                            "run_id": run_id,
                                            "campaign_id": campaign_id,
                                            "arm": arm,
                                            "layout": layout,
                                            "engine_variant": engine.name,
                                            "variant": variant,
                                            "input_len": str(point.input_len),
                                            "output_len": str(point.output_len),
                                            "concurrency": c,
                                            "request_rate": None,
                                            "repeat": repeat,
                                            "gpus": gpus,
                                            "valid": True,
                                            "window_s": WINDOW_S,
                                            "duration_s": WINDOW_S,
                                            "output_throughput_per_gpu": rate * 16,
                                        }
                                    )
                                    n = round(rate * WINDOW_S * gpus)
                                    requests += [
                                        {
                                            "run_id": run_id,
                                            "ok": True,
                                            "ttft_s": 0.1,
                                            "tpot_s": 0.01,
                                            "in_window": True,
                                        }
                                    ] * n
        self.campaigns[campaign_id] = (pl.DataFrame(runs), pl.DataFrame(requests))
        return campaign_id

    def load(self, campaign_ids) -> tuple[pl.DataFrame, pl.DataFrame]:
        pairs = [self.campaigns[c] for c in campaign_ids]
        return pl.concat([r for r, _ in pairs]), pl.concat([q for _, q in pairs])


@pytest.fixture
def profile_path(tmp_path: Path, tiny_model: Path) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(search_profile_data(tiny_model), sort_keys=False))
    return path


def test_the_load_between_a_loss_and_a_win_decides(profile_path: Path):
    cluster = DoubleCluster()
    runs, requests = cluster.load([cluster.measure(str(profile_path))])
    profile = Profile.model_validate(yaml.safe_load(profile_path.read_text()))
    gap = gaps(runs, requests, profile)
    # Per measure, shape and load: the best disaggregated setup and its same-device replicas.
    throughput = gap.filter(pl.col("measure") == THROUGHPUT)
    assert throughput["concurrency"].to_list() == [2, 64]
    assert set(throughput["engine_variant"]) == {"block128"}
    assert set(throughput["variant"]) == {"pull"}
    assert set(throughput["rival_layout"]) == {"2R"}
    found = deciders(gap)
    assert [(f.layout, f.concurrency, f.engine_variant, f.variant) for f in found] == [
        ("1P1D", 11, "block128", "pull")  # round(sqrt(2 * 64))
    ]
    assert "c=2" in found[0].reason and "c=64" in found[0].reason


def test_a_round_measures_only_what_decides(profile_path: Path, tiny_model: Path):
    cluster = DoubleCluster()
    runs, requests = cluster.load([cluster.measure(str(profile_path))])
    data = search_profile_data(tiny_model)
    found = deciders(gaps(runs, requests, Profile.model_validate(data)))
    derived = Profile.model_validate(follow_up(data, found, "search-1"))
    assert derived.name == "search-1"
    assert derived.enabled_arms == ["replicated", "disaggregated"]  # single is a reference
    assert derived.layouts("disaggregated") == ["1P1D"]
    assert derived.layouts("replicated") == ["2R"]
    assert [e.name for e in derived.engine_variants] == ["block128"]
    assert [v.name for v in derived.arms.disaggregated.handoff_variants] == ["pull"]
    assert derived.workload.concurrency == [11]
    assert derived.workload.rate_search is None


def test_rounds_close_in_on_the_crossover_within_the_rounds_allowed(
    profile_path: Path, tmp_path: Path
):
    cluster = DoubleCluster()
    said: list[str] = []
    rounds = search(
        str(profile_path),
        cluster.measure,
        cluster.load,
        budget_s=3600,
        work_dir=tmp_path,
        say=said.append,
        max_rounds=4,
    )
    measured = [p["workload"]["concurrency"] for p in cluster.profiles[1:]]
    # 2 loses, 64 wins; then 11 loses, 27 wins, 17 wins: the crossover lies in (11, 17].
    assert measured == [[11], [27], [17]]
    assert [len(r.deciders) for r in rounds] == [0, 1, 1, 1]
    assert all(r.campaign_id == f"round-{i}" for i, r in enumerate(rounds))
    assert any("c=11" in line and "c=27" in line for line in said)


def test_a_round_that_would_overrun_the_budget_is_not_started(profile_path: Path, tmp_path):
    cluster = DoubleCluster()
    # Round 0 takes 10 minutes for its 32 runs, so round 1's 4 runs would take 1.2 of the 0.2
    # minutes left.
    ticks = iter([0.0, 600.0, 608.0])
    said: list[str] = []
    rounds = search(
        str(profile_path),
        cluster.measure,
        cluster.load,
        budget_s=620,
        work_dir=tmp_path,
        say=said.append,
        clock=lambda: next(ticks),
    )
    assert len(rounds) == 1 and len(cluster.profiles) == 1
    assert said[-1] == ("search: round 1 (1 load(s)) would take ~1.2 min, 0.2 min left: stopping")


def test_the_recommendation_pools_the_rounds_and_names_the_winner(profile_path, tmp_path):
    cluster = DoubleCluster()
    rounds = search(
        str(profile_path), cluster.measure, cluster.load, 3600, tmp_path, lambda _: None
    )
    warehouse = Warehouse(tmp_path / "w.duckdb")
    profile = Profile.model_validate(yaml.safe_load(profile_path.read_text()))
    found = conclude(warehouse, rounds, profile, cluster.load)
    (row,) = found.iter_rows(named=True)
    assert row["verdict"] == "disaggregated"
    assert row["setup"] == "disaggregated 1P1D (pull) [block128]"
    assert row["rival"].startswith("replicated 2R")
    # At c=64 the double serves sqrt(64/16) = 2x its replicas.
    assert row["ratio"] == pytest.approx(2.0)
    assert "100% more requests per second per GPU" in row["sentence"]
    assert json.loads(row["campaigns"]) == [r.campaign_id for r in rounds]
    # Each side at its best load: disaggregation at 64; the flat replicas (either engine
    # variant serves as much) at their lowest.
    rival_engine = row["rival"].split("[")[1].rstrip("]")
    evidence = sorted(run.split("/", 1)[1] for run in json.loads(row["evidence"]))
    assert evidence == [
        "disaggregated-1P1D-block128-pull/c64-0",
        "disaggregated-1P1D-block128-pull/c64-1",
        f"replicated-2R-{rival_engine}-None/c2-0",
        f"replicated-2R-{rival_engine}-None/c2-1",
    ]
    stored = warehouse.query("SELECT round, round_campaign_id, deciders FROM search_rounds")
    assert stored["round"].to_list() == list(range(len(rounds)))
    assert json.loads(stored["deciders"][1])[0]["concurrency"] == 11
    assert warehouse.query("SELECT count(*) AS n FROM recommendations")["n"][0] == 1


def test_search_of_a_profile_without_both_arms_is_one_line(tmp_path, tiny_model, capsys):
    data = local_profile_data(tiny_model)
    del data["arms"]["disaggregated"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exited:
        main(["search", str(path), "--budget-minutes", "1"])
    assert exited.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "needs the replicated and disaggregated arms" in err
