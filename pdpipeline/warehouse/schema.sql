-- The warehouse's tables at the latest schema version: a new file is created from this.
-- Every table carries campaign_id; a campaign's rows for one asset are replaced atomically.
-- Older files gain later columns through migrations.py; views are in views.sql. A column's
-- place here is where it sits in a new file, and each table's row class in rows.py lists
-- the columns in the same order.

CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id      VARCHAR PRIMARY KEY,
    started_at       TIMESTAMPTZ NOT NULL,
    profile_name     VARCHAR NOT NULL,
    profile_path     VARCHAR,
    profile_sha256   VARCHAR NOT NULL,
    profile_text     VARCHAR NOT NULL,
    git_sha          VARCHAR,
    versions         JSON      -- controller package versions
);

CREATE TABLE IF NOT EXISTS hosts (
    campaign_id      VARCHAR NOT NULL,
    host             VARCHAR NOT NULL,
    address          VARCHAR,
    reach            VARCHAR,
    hostname         VARCHAR,
    cpu_model        VARCHAR,
    cpu_count        INTEGER,
    memory_bytes     BIGINT,
    device_kind      VARCHAR,
    gpu_count        INTEGER,
    gpus             JSON,
    rdma             JSON,
    nics             JSON,
    link_gbit_per_s  DOUBLE,   -- fastest RDMA/NIC link found; NULL when none
    nvlink           JSON,     -- per GPU: active NVLink links and their summed GB/s
    nvlink_gbit_per_s DOUBLE,  -- fastest GPU's NVLink total; NULL without NVLink
    versions         JSON,     -- python, vllm, nixl, torch, ucx on the host
    model_dir        VARCHAR,
    model_present    BOOLEAN,
    model_bytes      BIGINT,
    clock_offset_s   DOUBLE,   -- host clock minus controller clock
    checked_at       TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS kv_cache (
    campaign_id        VARCHAR NOT NULL,
    tokens             INTEGER NOT NULL,
    bytes              BIGINT NOT NULL,
    bytes_per_token    BIGINT NOT NULL,
    architecture       VARCHAR,
    kv_dtype           VARCHAR,
    link               VARCHAR NOT NULL,
    link_source        VARCHAR NOT NULL,   -- 'host' (found by hardware_check), 'catalogue' or 'model' (kvcost)
    link_gbit_per_s    DOUBLE,
    predicted_seconds  DOUBLE
);

CREATE TABLE IF NOT EXISTS runs (
    run_id                     VARCHAR NOT NULL,
    campaign_id                VARCHAR NOT NULL,
    arm                        VARCHAR NOT NULL CHECK (arm IN ('single', 'replicated', 'disaggregated')),
    point                      VARCHAR NOT NULL,
    input_len                  VARCHAR NOT NULL,
    output_len                 VARCHAR NOT NULL,
    concurrency                INTEGER,
    request_rate               DOUBLE,
    "repeat"                   INTEGER NOT NULL,
    instances                  INTEGER NOT NULL,
    gpus                       INTEGER NOT NULL,
    valid                      BOOLEAN NOT NULL,
    invalid_reason             VARCHAR,
    requests                   INTEGER NOT NULL,
    failed                     INTEGER NOT NULL,
    duration_s                 DOUBLE,
    request_throughput         DOUBLE,
    output_throughput          DOUBLE,
    total_throughput           DOUBLE,
    output_throughput_per_gpu  DOUBLE,
    total_throughput_per_gpu   DOUBLE,
    goodput                    DOUBLE,
    slo_ttft_ms                DOUBLE,
    slo_tpot_ms                DOUBLE,
    ttft_mean_ms DOUBLE, ttft_p50_ms DOUBLE, ttft_p90_ms DOUBLE, ttft_p95_ms DOUBLE, ttft_p99_ms DOUBLE,
    tpot_mean_ms DOUBLE, tpot_p50_ms DOUBLE, tpot_p90_ms DOUBLE, tpot_p95_ms DOUBLE, tpot_p99_ms DOUBLE,
    itl_mean_ms  DOUBLE, itl_p50_ms  DOUBLE, itl_p90_ms  DOUBLE, itl_p95_ms  DOUBLE, itl_p99_ms  DOUBLE,
    e2e_mean_ms  DOUBLE, e2e_p50_ms  DOUBLE, e2e_p90_ms  DOUBLE, e2e_p95_ms  DOUBLE, e2e_p99_ms  DOUBLE,
    kv_bytes                   DOUBLE,   -- NIXL bytes pulled by decode instances in the run
    kv_transfers               DOUBLE,
    kv_xfer_time_s             DOUBLE,
    kv_failed_transfers        DOUBLE,
    kv_external_tokens         DOUBLE,   -- prompt tokens decode got from the prefill side
    kv_params_missing          DOUBLE,   -- prefills that returned no kv_transfer_params
    started_at                 TIMESTAMPTZ,
    -- The disaggregated arm's handoff variant (e.g. pull, push); NULL for single and replicated.
    variant                    VARCHAR,
    -- The steady window the figures above cover (loadgen/window.py), epoch seconds on the
    -- controller: closed loop from the c-th completion to the last start, open loop from the end
    -- of the warm-up share of the arrival period to the last arrival. NULL before windows:
    -- those rows' figures cover the whole run.
    window_start               DOUBLE,
    window_end                 DOUBLE,
    window_s                   DOUBLE,
    window_requests            INTEGER,  -- requests started inside the window
    window_short               BOOLEAN,  -- the window missed its minimums (the bound was reached)
    saturated                  BOOLEAN,  -- open loop: completions fell behind arrivals; else NULL
    whole_run_duration_s       DOUBLE,   -- first start to last finish
    whole_run_output_throughput  DOUBLE,
    whole_run_request_throughput DOUBLE,
    -- The series beyond arm and handoff variant: the layout ('1P1D', '2R'; NULL for single) and
    -- the engine variant (settings applied to every arm alike, e.g. a KV block size) with its
    -- vLLM arguments as JSON; NULL where the profile has none.
    layout                     VARCHAR,
    engine_variant             VARCHAR,
    engine_args                JSON,
    -- The SLO tier a rate search measured this run for; NULL for the workload matrix's runs.
    searched_for               VARCHAR,
    -- Requests each backend served, per role: {"decode": {"http://...": 12, ...}, ...}; the
    -- proxy round-robins within a role, so the counts of a role differ by at most one.
    backend_requests           JSON
);

CREATE TABLE IF NOT EXISTS requests (
    run_id                  VARCHAR NOT NULL,
    campaign_id             VARCHAR NOT NULL,
    arm                     VARCHAR NOT NULL,
    request_index           INTEGER NOT NULL,
    request_id              VARCHAR NOT NULL,
    served_by               VARCHAR,
    sent_at                 DOUBLE,     -- epoch seconds on the controller
    ttft_s                  DOUBLE,
    tpot_s                  DOUBLE,
    e2e_s                   DOUBLE,
    itl_s                   JSON,       -- every inter-token gap, seconds
    prompt_tokens           INTEGER,
    output_tokens           INTEGER,
    expected_prompt_tokens  INTEGER,
    expected_output_tokens  INTEGER,
    status                  INTEGER,
    error                   VARCHAR,
    ok                      BOOLEAN NOT NULL,
    variant                 VARCHAR,
    -- Disaggregated requests, from the proxy: the prefill leg, the wait from the prefill's
    -- answer to decode's first byte (KV transfer plus one decode step), and the KV blocks the
    -- prefill offered.
    prefill_s               DOUBLE,
    handoff_s               DOUBLE,
    kv_blocks               INTEGER,
    -- Open loop: the planned arrival (epoch) TTFT and E2E run from, and the wait from it to the
    -- send (for a free slot under max_concurrency); NULL in a closed loop.
    scheduled_at            DOUBLE,
    queue_s                 DOUBLE,
    in_window               BOOLEAN,    -- started inside its run's steady window
    layout                  VARCHAR,
    engine_variant          VARCHAR,
    proxy_s                 DOUBLE      -- the proxy's time from arrival to the first byte out
);

CREATE TABLE IF NOT EXISTS server_metrics (
    run_id       VARCHAR NOT NULL,
    campaign_id  VARCHAR NOT NULL,
    arm          VARCHAR NOT NULL,
    server       VARCHAR NOT NULL,
    name         VARCHAR NOT NULL,
    labels       JSON,
    "before"     DOUBLE,
    "after"      DOUBLE,
    delta        DOUBLE,     -- counters: after - before; gauges: after
    variant      VARCHAR,
    layout       VARCHAR,
    engine_variant VARCHAR
);

-- How each handoff variant of the disaggregated arm moved the KV cache.
CREATE TABLE IF NOT EXISTS handoff_variants (
    campaign_id                VARCHAR NOT NULL,
    arm                        VARCHAR NOT NULL,   -- 'disaggregated': joins runs on (campaign_id, arm, variant)
    variant                    VARCHAR NOT NULL,
    kv_connector               VARCHAR NOT NULL,   -- NixlConnector (pull), NixlPushConnector (push)
    handoff                    VARCHAR NOT NULL,   -- 'sequential' or 'concurrent' (push only)
    kv_connector_extra_config  JSON,
    env                        JSON                -- UCX_/NIXL_ settings given to its servers
);

CREATE TABLE IF NOT EXISTS comparison (
    campaign_id                 VARCHAR NOT NULL,
    input_len                   VARCHAR NOT NULL,
    output_len                  VARCHAR NOT NULL,
    concurrency                 INTEGER,
    request_rate                DOUBLE,
    arm                         VARCHAR NOT NULL,
    gpus                        INTEGER,
    valid_repeats               INTEGER,
    output_throughput           DOUBLE,
    output_throughput_per_gpu   DOUBLE,
    output_throughput_per_gpu_std DOUBLE,
    goodput                     DOUBLE,
    ttft_p50_ms DOUBLE, ttft_p99_ms DOUBLE, tpot_p50_ms DOUBLE, tpot_p99_ms DOUBLE,
    per_gpu_vs_single           DOUBLE,   -- ratio of per-GPU output throughput
    per_gpu_vs_replicated       DOUBLE,
    ttft_p50_vs_replicated      DOUBLE,   -- ratio of latencies (below 1 is faster)
    tpot_p50_vs_replicated      DOUBLE,
    kv_bytes_per_transfer       DOUBLE,
    kv_seconds_per_transfer     DOUBLE,
    kv_gbyte_per_s              DOUBLE,
    kv_predicted_bytes          DOUBLE,
    variant                     VARCHAR,
    -- The link between the prefill and decode instances, as hardware_check found it, and the
    -- share of its nominal rate the KV transfers achieved.
    kv_link                     VARCHAR,
    kv_link_gbyte_per_s         DOUBLE,
    kv_link_fraction            DOUBLE,
    layout                      VARCHAR,
    engine_variant              VARCHAR
);

-- Each valid run judged at each SLO tier of the profile (DistServe's goodput): the share of its
-- counted requests (started inside the steady window) meeting both limits, those per second of
-- the window per GPU, whether the share over the point's repeats reaches the tier's target, and
-- whether the point is where its series serves most within the tier (per shape).
CREATE TABLE IF NOT EXISTS slo_goodput (
    campaign_id                VARCHAR NOT NULL,
    tier                       VARCHAR NOT NULL,
    ttft_ms                    DOUBLE,   -- the tier's limits; NULL: no limit on that one
    tpot_ms                    DOUBLE,
    attainment_target          DOUBLE NOT NULL,
    run_id                     VARCHAR NOT NULL,
    arm                        VARCHAR NOT NULL,
    variant                    VARCHAR,
    input_len                  VARCHAR NOT NULL,
    output_len                 VARCHAR NOT NULL,
    concurrency                INTEGER,
    request_rate               DOUBLE,
    "repeat"                   INTEGER NOT NULL,
    gpus                       INTEGER NOT NULL,
    window_s                   DOUBLE,   -- what rates are over: the steady window, else the run
    requests                   INTEGER NOT NULL,   -- counted requests
    requests_met               INTEGER NOT NULL,
    attainment                 DOUBLE,
    goodput_per_gpu            DOUBLE,   -- requests meeting the tier per second per GPU
    output_throughput_per_gpu  DOUBLE,
    point_attainment           DOUBLE,   -- over every repeat of the run's point
    point_met                  BOOLEAN NOT NULL,
    best                       BOOLEAN NOT NULL,
    layout                     VARCHAR,
    engine_variant             VARCHAR
);

-- The regime map: per shape, at each TTFT x TPOT limit of a grid and one attainment, the setup
-- serving most requests per GPU within it (its best load), recomputed from the stored requests.
-- The challenger is the best setup other than the baseline (replicated, on the same devices);
-- the difference is its goodput per GPU minus the baseline's, with a paired bootstrap interval
-- (requests resampled within runs, the same draw for every setup at a point); tie: the interval
-- includes 0.
CREATE TABLE IF NOT EXISTS regime_map (
    campaign_id                 VARCHAR NOT NULL,
    input_len                   VARCHAR NOT NULL,
    output_len                  VARCHAR NOT NULL,
    ttft_ms                     DOUBLE NOT NULL,
    tpot_ms                     DOUBLE NOT NULL,
    attainment                  DOUBLE NOT NULL,
    winner_arm                  VARCHAR,   -- NULL: no setup meets the cell at any load
    winner_variant              VARCHAR,
    winner_goodput_per_gpu      DOUBLE,
    baseline_goodput_per_gpu    DOUBLE,
    challenger_arm              VARCHAR,
    challenger_variant          VARCHAR,
    challenger_goodput_per_gpu  DOUBLE,
    difference                  DOUBLE,
    difference_low              DOUBLE,
    difference_high             DOUBLE,
    tie                         BOOLEAN,
    winner_layout               VARCHAR,
    winner_engine_variant       VARCHAR,
    challenger_layout           VARCHAR,
    challenger_engine_variant   VARCHAR
);

-- Per series and shape, at each SLO tier the profile's rate search covers: the highest open-loop
-- request rate that met the tier, bracketed by the lowest that did not (loadgen/ratesearch.py).
-- bound: 'found' (bracketed), 'below_min' (not even the lowest rate met it), 'above_max' (the
-- highest rate searched still met it: the capacity is at least max_rate), 'budget_spent' (the
-- steps ran out on the ladder before any rate failed: at least max_rate, no upper bracket).
CREATE TABLE IF NOT EXISTS slo_capacity (
    campaign_id          VARCHAR NOT NULL,
    arm                  VARCHAR NOT NULL,
    layout               VARCHAR,
    engine_variant       VARCHAR,
    variant              VARCHAR,
    input_len            VARCHAR NOT NULL,
    output_len           VARCHAR NOT NULL,
    tier                 VARCHAR NOT NULL,
    ttft_ms              DOUBLE,
    tpot_ms              DOUBLE,
    attainment_target    DOUBLE NOT NULL,
    gpus                 INTEGER NOT NULL,
    max_rate             DOUBLE,
    max_rate_per_gpu     DOUBLE,
    first_failing_rate   DOUBLE,
    bound                VARCHAR NOT NULL CHECK (bound IN ('found', 'below_min', 'above_max', 'budget_spent')),
    probes               JSON NOT NULL   -- [[rate, attainment], ...] in the order measured
);

-- Per SLO tier and shape, the setup to deploy (report/recommend.py): verdict 'disaggregated'
-- (the best disaggregated setup serves more per GPU than the best replicas on as many devices),
-- 'replicated', 'tie' (the interval on the ratio holds 1) or 'none' (no setup meets the tier).
-- A search stores its rounds pooled under its first campaign's id.
CREATE TABLE IF NOT EXISTS recommendations (
    campaign_id   VARCHAR NOT NULL,
    tier          VARCHAR NOT NULL,
    ttft_ms       DOUBLE,
    tpot_ms       DOUBLE,
    attainment    DOUBLE NOT NULL,
    input_len     VARCHAR NOT NULL,
    output_len    VARCHAR NOT NULL,
    verdict       VARCHAR NOT NULL,
    setup         VARCHAR,
    rival         VARCHAR,
    ratio         DOUBLE,
    ratio_low     DOUBLE,
    ratio_high    DOUBLE,
    sentence      VARCHAR NOT NULL,
    evidence      JSON NOT NULL,   -- run ids of both setups at their best loads
    campaigns     JSON NOT NULL,   -- the campaigns pooled
    caveat        VARCHAR          -- what dominates the comparison instead of the architecture
);

-- The rounds of a search (search.py), under its first campaign's id.
CREATE TABLE IF NOT EXISTS search_rounds (
    campaign_id        VARCHAR NOT NULL,
    round              INTEGER NOT NULL,
    round_campaign_id  VARCHAR NOT NULL,
    seconds            DOUBLE NOT NULL,
    runs               INTEGER NOT NULL,
    deciders           JSON NOT NULL
);

-- Per KV link, the time of one NIXL transfer: fixed_s + per_descriptor_s x descriptors +
-- per_byte_s x bytes, a non-negative least-squares fit over the campaign's healthy
-- disaggregated runs (report/kvcost.py); held_out_error: the median |relative error| of each
-- setting predicted by the fit on the link's other settings.
CREATE TABLE IF NOT EXISTS kv_cost_model (
    campaign_id           VARCHAR NOT NULL,
    link                  VARCHAR,
    link_gbyte_per_s      DOUBLE,
    fixed_s               DOUBLE NOT NULL,
    per_descriptor_s      DOUBLE NOT NULL,
    per_byte_s            DOUBLE NOT NULL,
    n_runs                INTEGER NOT NULL,
    n_settings            INTEGER NOT NULL,
    block_sizes           JSON NOT NULL,
    descriptors_source    VARCHAR NOT NULL,   -- 'metric', 'estimate' or 'mixed'
    r2                    DOUBLE,
    held_out_error        DOUBLE,
    achieved_gbyte_per_s  DOUBLE
);

-- Per disaggregated run: seconds per KV transfer measured, as the link's model predicts them,
-- and as the model fitted without the run's setting does; degraded: the transport did far
-- worse than the model allows (report/kvcost.py says when), kept out of the tier verdicts.
CREATE TABLE IF NOT EXISTS kv_cost_fit (
    campaign_id               VARCHAR NOT NULL,
    run_id                    VARCHAR NOT NULL,
    link                      VARCHAR,
    layout                    VARCHAR,
    engine_variant            VARCHAR,
    variant                   VARCHAR,
    block_size                INTEGER NOT NULL,
    bytes_per_transfer        DOUBLE NOT NULL,
    descriptors_per_transfer  DOUBLE NOT NULL,
    descriptors_source        VARCHAR NOT NULL,   -- 'metric' or 'estimate'
    measured_s                DOUBLE NOT NULL,
    predicted_s               DOUBLE,
    held_out_predicted_s      DOUBLE,
    degraded                  BOOLEAN NOT NULL,
    degraded_reason           VARCHAR
);

-- Each vLLM server of each launch, as the preflight found it before the first point
-- (preflight.py): idle CPU, and for KV servers the UCX protocols and lanes NIXL chose, the KV
-- layout, block size, descriptors per block and NIXL version.
CREATE TABLE IF NOT EXISTS launch_servers (
    campaign_id                  VARCHAR NOT NULL,
    arm                          VARCHAR NOT NULL,
    launch                       VARCHAR NOT NULL,
    layout                       VARCHAR,
    engine_variant               VARCHAR,
    variant                      VARCHAR,
    server                       VARCHAR NOT NULL,
    role                         VARCHAR NOT NULL,
    host                         VARCHAR NOT NULL,
    device_kind                  VARCHAR NOT NULL,
    devices                      JSON NOT NULL,
    idle_cpu_cores               DOUBLE NOT NULL,
    block_size                   INTEGER,
    nixl_version                 VARCHAR,
    kv_layout                    VARCHAR,
    kv_contiguous_across_layers  BOOLEAN,
    preflight_kv_blocks          INTEGER,
    descriptors_per_block        DOUBLE,
    kv_protocols                 JSON,
    kv_lanes                     VARCHAR,
    preflight_error              VARCHAR
);
