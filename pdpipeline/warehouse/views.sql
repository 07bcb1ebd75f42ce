-- The warehouse's views, re-applied on every write connection after the migrations (they read
-- migrated columns), so a changed view reaches existing files by itself. A series is (arm,
-- layout, engine_variant, variant); the last three are NULL where a campaign has none of them,
-- so they are grouped on, and joined with IS NOT DISTINCT FROM.

CREATE OR REPLACE VIEW latest_campaign AS
    SELECT * FROM campaigns ORDER BY started_at DESC LIMIT 1;

CREATE OR REPLACE VIEW latest_comparison AS
    SELECT c.* FROM comparison c JOIN latest_campaign USING (campaign_id)
    ORDER BY input_len, output_len, concurrency NULLS LAST, request_rate, arm, layout,
             engine_variant, variant;

CREATE OR REPLACE VIEW throughput_vs_load AS
    SELECT campaign_id, arm, layout, engine_variant, variant, input_len, output_len, concurrency,
           request_rate,
           count(*) FILTER (WHERE valid) AS valid_repeats,
           avg(output_throughput) FILTER (WHERE valid) AS output_throughput,
           avg(output_throughput_per_gpu) FILTER (WHERE valid) AS output_throughput_per_gpu,
           avg(ttft_p50_ms) FILTER (WHERE valid) AS ttft_p50_ms,
           avg(tpot_p50_ms) FILTER (WHERE valid) AS tpot_p50_ms
    FROM runs GROUP BY ALL;

CREATE OR REPLACE VIEW nightly_trend AS
    SELECT k.profile_name, k.started_at, r.campaign_id, r.arm, r.layout, r.engine_variant,
           r.variant, r.input_len, r.output_len, r.concurrency, r.request_rate,
           avg(r.output_throughput_per_gpu) FILTER (WHERE r.valid) AS output_throughput_per_gpu,
           avg(r.ttft_p50_ms) FILTER (WHERE r.valid) AS ttft_p50_ms,
           bool_and(r.valid) AS all_valid
    FROM runs r JOIN campaigns k USING (campaign_id)
    GROUP BY ALL ORDER BY k.started_at;

-- KV moved per campaign and disaggregated series (layout, engine variant, handoff variant): the
-- runs' NIXL totals and the rate they give.
CREATE OR REPLACE VIEW kv_transfer_totals AS
    SELECT campaign_id, layout, engine_variant, variant,
           sum(kv_bytes) AS kv_bytes, sum(kv_transfers) AS kv_transfers,
           sum(kv_xfer_time_s) AS kv_xfer_time_s,
           sum(kv_bytes) / nullif(sum(kv_xfer_time_s), 0) / 1e9 AS kv_gbyte_per_s,
           sum(kv_failed_transfers) AS kv_failed_transfers,
           sum(kv_external_tokens) AS kv_external_tokens
    FROM runs WHERE arm = 'disaggregated' GROUP BY ALL;

-- Per disaggregated request: the KV blocks its prefill offered, the run's measured NIXL bytes
-- split over its requests by those blocks, and the proxy's timing of the handoff.
CREATE OR REPLACE VIEW request_kv AS
    SELECT q.campaign_id, r.layout, r.engine_variant, q.variant, q.run_id, q.request_index,
           q.request_id, q.kv_blocks,
           r.kv_bytes * q.kv_blocks / sum(q.kv_blocks) OVER (PARTITION BY q.run_id) AS kv_bytes,
           q.prefill_s, q.handoff_s
    FROM requests q JOIN runs r USING (run_id) WHERE q.arm = 'disaggregated';

-- The throughput-interactivity frontier: per campaign, series and workload point, tokens/s per
-- user (1000 / TPOT p50 ms) and output tokens/s per GPU over the valid repeats, and whether the
-- point is on its series' front (no point of the same series and shape at least as good on both
-- axes and better on one). Both axes are per device or per user: series on different numbers of
-- devices share them. pdpipeline/report/frontier.py computes the same in Python.
CREATE OR REPLACE VIEW frontier AS
    WITH points AS (
        SELECT campaign_id, arm, layout, engine_variant, variant, input_len, output_len,
               concurrency, request_rate,
               max(gpus) AS gpus,
               1000 / avg(tpot_p50_ms) AS tok_s_per_user,
               avg(output_throughput_per_gpu) AS output_throughput_per_gpu
        FROM runs WHERE valid
        GROUP BY campaign_id, arm, layout, engine_variant, variant, input_len, output_len,
                 concurrency, request_rate
        HAVING avg(tpot_p50_ms) > 0 AND avg(output_throughput_per_gpu) IS NOT NULL
    )
    SELECT p.*, NOT EXISTS (
        SELECT 1 FROM points q
        WHERE q.campaign_id = p.campaign_id AND q.arm = p.arm
          AND q.layout IS NOT DISTINCT FROM p.layout
          AND q.engine_variant IS NOT DISTINCT FROM p.engine_variant
          AND q.variant IS NOT DISTINCT FROM p.variant
          AND q.input_len = p.input_len AND q.output_len = p.output_len
          AND q.tok_s_per_user >= p.tok_s_per_user
          AND q.output_throughput_per_gpu >= p.output_throughput_per_gpu
          AND (q.tok_s_per_user > p.tok_s_per_user
               OR q.output_throughput_per_gpu > p.output_throughput_per_gpu)
    ) AS on_front
    FROM points p;

-- Per campaign, SLO tier, series and shape: the load where the series serves most requests per
-- GPU within the tier, and that goodput and output tokens/s per GPU over its repeats
-- (report/slo.py marks the load: `best`). A series meeting a tier at no load has no row.
CREATE OR REPLACE VIEW slo_best AS
    SELECT campaign_id, tier, ttft_ms, tpot_ms, attainment_target, arm, layout, engine_variant,
           variant, input_len, output_len, concurrency, request_rate,
           count(*) AS repeats,
           avg(goodput_per_gpu) AS goodput_per_gpu,
           avg(output_throughput_per_gpu) AS output_throughput_per_gpu,
           any_value(point_attainment) AS point_attainment
    FROM slo_goodput WHERE best
    GROUP BY campaign_id, tier, ttft_ms, tpot_ms, attainment_target, arm, layout, engine_variant,
             variant, input_len, output_len, concurrency, request_rate;

-- Where a disaggregated request's time goes, per run: the medians of the proxy's timing of each
-- request started in the steady window (prefill leg; prefill answer -> decode's first byte; its
-- own arrival -> first byte) and the client's TTFT and decode time, beside the engines' means for
-- the run (queue and prefill compute on the prefill instances, KV post and transfer per transfer,
-- queue on the decode instances). Medians and means of different requests: the parts tell where
-- the time goes, they are not meant to add up exactly.
CREATE OR REPLACE VIEW handoff_breakdown AS
    WITH proxy AS (
        SELECT run_id, count(*) AS requests,
               median(ttft_s) AS ttft_s, median(prefill_s) AS prefill_leg_s,
               median(handoff_s) AS handoff_s, median(proxy_s) AS proxy_s,
               median(ttft_s - proxy_s) AS client_to_proxy_s, median(e2e_s - ttft_s) AS decode_s
        FROM requests
        WHERE arm = 'disaggregated' AND ok AND coalesce(in_window, true)
        GROUP BY run_id
    ), engines AS (
        SELECT run_id,
               sum(delta) FILTER (WHERE name = 'vllm:request_queue_time_seconds_sum'
                                  AND server LIKE '%-prefill-%')
               / nullif(sum(delta) FILTER (WHERE name = 'vllm:request_queue_time_seconds_count'
                                           AND server LIKE '%-prefill-%'), 0) AS prefill_queue_s,
               sum(delta) FILTER (WHERE name = 'vllm:request_prefill_time_seconds_sum'
                                  AND server LIKE '%-prefill-%')
               / nullif(sum(delta) FILTER (WHERE name = 'vllm:request_prefill_time_seconds_count'
                                           AND server LIKE '%-prefill-%'), 0) AS prefill_compute_s,
               sum(delta) FILTER (WHERE name = 'vllm:nixl_post_time_seconds_sum')
               / nullif(sum(delta) FILTER (WHERE name = 'vllm:nixl_post_time_seconds_count'), 0)
                   AS kv_post_s,
               sum(delta) FILTER (WHERE name = 'vllm:request_queue_time_seconds_sum'
                                  AND server LIKE '%-decode-%')
               / nullif(sum(delta) FILTER (WHERE name = 'vllm:request_queue_time_seconds_count'
                                           AND server LIKE '%-decode-%'), 0) AS decode_queue_s
        FROM server_metrics WHERE arm = 'disaggregated'
        GROUP BY run_id
    )
    SELECT r.campaign_id, r.run_id, r.layout, r.engine_variant, r.variant, r.input_len,
           r.output_len, r.concurrency, r.request_rate, r.repeat, p.requests, p.ttft_s,
           p.client_to_proxy_s, p.proxy_s, p.prefill_leg_s, e.prefill_queue_s,
           e.prefill_compute_s, p.handoff_s, e.kv_post_s,
           r.kv_xfer_time_s / nullif(r.kv_transfers, 0) AS kv_transfer_s,
           e.decode_queue_s, p.decode_s
    FROM runs r JOIN proxy p USING (run_id) LEFT JOIN engines e USING (run_id)
    WHERE r.valid;
