"""KV cache arithmetic against hand-computed sizes for published model configs.

Every expected number is worked out in a comment from the config's fields, never from the code
under test. Fixtures in tests/fixtures/model_configs/ are written from the models' published
config.json files (see the README there).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pdpipeline.errors import PdPipelineError
from pdpipeline.kvcache import (
    LINK_CATALOGUE,
    KVConfigError,
    KVLayout,
    Link,
    format_table,
    kv_cache_json,
    kv_layout,
    kv_rows,
    load_config,
    predicted_transfer_seconds,
)

CONFIGS = Path(__file__).parent / "fixtures" / "model_configs"
MiB = 2**20


def config(name: str) -> dict:
    return load_config(CONFIGS / f"{name}.json")


# --- standard attention ------------------------------------------------------------------------


def test_llama_3_1_8b_gqa_bf16() -> None:
    layout = kv_layout(config("llama-3.1-8b-instruct"))
    # head_dim = 4096 / 32 = 128; 2 (K,V) * 8 kv heads * 128 * 2 bytes = 4096 B per layer
    # 4096 B * 32 layers = 131072 B per token
    assert layout.architecture == "gqa"
    assert layout.dtype == "bfloat16"
    assert layout.elements_per_token_per_layer == 2 * 8 * 128
    assert layout.bytes_per_token == 131072
    # 131072 B * 512 tokens = 67108864 B = 64 MiB (not the 32 MB once reported)
    assert layout.bytes_for(512) == 67108864 == 64 * MiB
    assert layout.sliding_window is None
    assert layout.sliding_layers == 0


def test_llama_3_1_8b_fp8_kv_cache_halves_it() -> None:
    layout = kv_layout(config("llama-3.1-8b-instruct"), kv_dtype="fp8")
    # 2 * 8 * 128 * 1 byte * 32 layers = 65536 B per token; * 512 = 33554432 B = 32 MiB
    assert layout.dtype == "fp8"
    assert layout.bytes_per_element == 1.0
    assert layout.bytes_per_token == 65536
    assert layout.bytes_for(512) == 33554432


@pytest.mark.parametrize("kv_dtype", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_variants_are_one_byte(kv_dtype: str) -> None:
    assert kv_layout(config("llama-3.1-8b-instruct"), kv_dtype).bytes_per_token == 65536


def test_explicit_16_bit_kv_dtype_names() -> None:
    cfg = config("llama-3.1-8b-instruct")
    assert kv_layout(cfg, "bfloat16").bytes_per_token == 131072
    half = kv_layout(cfg, "half")
    # "half" is float16: same 2 bytes, reported under its real name
    assert (half.dtype, half.bytes_per_token) == ("float16", 131072)
    # float32: 2 * 8 * 128 * 4 B * 32 = 262144
    assert kv_layout(cfg, "float32").bytes_per_token == 262144


def test_llama_2_7b_mha_fp16() -> None:
    layout = kv_layout(config("llama-2-7b-hf"))
    # head_dim = 4096 / 32 = 128; 2 * 32 kv heads * 128 * 2 B (float16) = 16384 B per layer
    # 16384 * 32 layers = 524288 B per token; * 512 tokens = 268435456 B = 256 MiB
    assert layout.architecture == "mha"
    assert layout.dtype == "float16"
    assert layout.bytes_per_token == 524288
    assert layout.bytes_for(512) == 268435456


def test_missing_num_key_value_heads_means_one_per_attention_head() -> None:
    cfg = config("llama-2-7b-hf")
    del cfg["num_key_value_heads"]
    layout = kv_layout(cfg)
    # falls back to 32 kv heads: 2 * 32 * 128 * 2 B * 32 layers = 524288
    assert layout.architecture == "mha"
    assert layout.bytes_per_token == 524288


def test_qwen3_explicit_head_dim_wins_over_hidden_over_heads() -> None:
    layout = kv_layout(config("qwen3-0.6b"))
    # head_dim is 128 in the config, although hidden 1024 / 16 heads would give 64
    # 2 * 8 kv heads * 128 * 2 B = 4096 B per layer; * 28 layers = 114688 B per token
    assert layout.architecture == "gqa"
    assert layout.elements_per_token_per_layer == 2 * 8 * 128
    assert layout.bytes_per_token == 114688
    # sliding_window is null here
    assert layout.sliding_window is None


def test_qwen2_5_use_sliding_window_false_disables_the_window() -> None:
    layout = kv_layout(config("qwen2.5-0.5b-instruct"))
    # head_dim = 896 / 14 = 64; 2 * 2 kv heads * 64 * 2 B = 512 B per layer; * 24 = 12288 B/token
    assert layout.bytes_per_token == 12288
    assert layout.sliding_window is None
    assert layout.sliding_layers == 0
    # past the configured (but switched-off) 32768-token window nothing is capped:
    # 12288 * 40000 = 491520000
    assert layout.bytes_for(40000) == 491520000


# --- sliding windows ---------------------------------------------------------------------------


def test_mistral_7b_v0_1_every_layer_slides() -> None:
    layout = kv_layout(config("mistral-7b-v0.1"))
    # 2 * 8 kv heads * (4096 / 32 = 128) * 2 B * 32 layers = 131072 B per token
    assert layout.bytes_per_token == 131072
    assert (layout.sliding_window, layout.sliding_layers) == (4096, 32)
    # under the window every token counts: 131072 * 1000 = 131072000
    assert layout.bytes_for(1000) == 131072000
    # at the window: 131072 * 4096 = 536870912 (512 MiB)
    assert layout.bytes_for(4096) == 536870912
    # beyond it all 32 layers hold 4096 tokens: still 536870912, not 131072 * 8192 = 1 GiB
    assert layout.bytes_for(8192) == 536870912


def test_gemma_3_1b_mqa_with_sliding_window_pattern() -> None:
    # Gemma-3-1B is the MQA fixture: 4 attention heads share num_key_value_heads 1. (Falcon-7B
    # is MQA too, but its config says multi_query instead of num_key_value_heads.)
    layout = kv_layout(config("gemma-3-1b-it"))
    assert layout.architecture == "mqa"
    # head_dim 256 explicit (1152 / 4 would be 288); 2 * 1 * 256 = 512 elements * 2 B = 1024 B
    # per layer; * 26 layers = 26624 B per token
    assert layout.elements_per_token_per_layer == 512
    assert layout.bytes_per_token == 26624
    # sliding_window_pattern 6: layers 6, 12, 18, 24 (1-based) are full -> 4 full, 22 sliding
    assert (layout.sliding_window, layout.sliding_layers) == (512, 22)
    # under the window: 26624 * 256 = 6815744
    assert layout.bytes_for(256) == 6815744
    # 4096 tokens: 1024 B * (4 full * 4096 + 22 sliding * 512) = 1024 * (16384 + 11264)
    # = 1024 * 27648 = 28311552
    assert layout.bytes_for(4096) == 28311552


def test_gpt_oss_20b_layer_types() -> None:
    layout = kv_layout(config("gpt-oss-20b"))
    # 2 * 8 kv heads * 64 (explicit head_dim) * 2 B = 2048 B per layer; * 24 = 49152 B/token
    assert layout.bytes_per_token == 49152
    # layer_types alternates sliding/full over 24 layers -> 12 sliding with a 128-token window
    assert (layout.sliding_window, layout.sliding_layers) == (128, 12)
    # 100 tokens, under the window: 49152 * 100 = 4915200
    assert layout.bytes_for(100) == 4915200
    # 4096 tokens: 2048 * (12 * 4096 + 12 * 128) = 2048 * 50688 = 103809024
    assert layout.bytes_for(4096) == 103809024


def test_gemma_2_alternates_although_its_config_does_not_say_so() -> None:
    # The published gemma-2-2b config is float32; vLLM serves it in 16-bit, so ask for bfloat16.
    layout = kv_layout(config("gemma-2-2b"), kv_dtype="bfloat16")
    # head_dim 256 explicit (2304 / 8 would be 288); 2 * 4 kv heads * 256 * 2 B = 4096 B per
    # layer; * 26 layers = 106496 B per token
    assert layout.bytes_per_token == 106496
    # even layers slide: 13 of 26, window 4096
    assert (layout.sliding_window, layout.sliding_layers) == (4096, 13)
    # 8192 tokens: 4096 * (13 * 8192 + 13 * 4096) = 4096 * 159744 = 654311424
    assert layout.bytes_for(8192) == 654311424


def test_auto_dtype_counts_float32_as_4_bytes() -> None:
    layout = kv_layout(config("gemma-2-2b"))
    # 2 * 4 * 256 * 4 B = 8192 B per layer; * 26 = 212992 B per token
    assert (layout.dtype, layout.bytes_per_token) == ("float32", 212992)


def test_layer_types_with_only_full_layers_means_no_window() -> None:
    cfg = config("mistral-7b-v0.1")
    cfg["layer_types"] = ["full_attention"] * 32
    layout = kv_layout(cfg)
    assert (layout.sliding_window, layout.sliding_layers) == (None, 0)
    # 131072 * 8192 = 1073741824 (1 GiB): nothing capped
    assert layout.bytes_for(8192) == 1073741824


def test_bytes_for_zero_and_negative_tokens() -> None:
    layout = kv_layout(config("llama-3.1-8b-instruct"))
    assert layout.bytes_for(0) == 0
    with pytest.raises(ValueError, match="-1"):
        layout.bytes_for(-1)


# --- MLA ---------------------------------------------------------------------------------------


def test_deepseek_v2_lite_mla() -> None:
    layout = kv_layout(config("deepseek-v2-lite"))
    # one latent of kv_lora_rank 512 + qk_rope_head_dim 64 = 576 elements per layer, no K/V
    # pair, no heads; 576 * 2 B * 27 layers = 31104 B per token
    assert layout.architecture == "mla"
    assert layout.elements_per_token_per_layer == 576
    assert layout.bytes_per_token == 31104
    # 31104 * 4096 = 127401984
    assert layout.bytes_for(4096) == 127401984
    # fp8: 576 * 1 B * 27 = 15552
    assert kv_layout(config("deepseek-v2-lite"), "fp8").bytes_per_token == 15552


# --- multimodal nesting ------------------------------------------------------------------------


def test_text_config_is_used_when_nested() -> None:
    text = config("llama-3.1-8b-instruct")
    dtype = text.pop("torch_dtype")
    # dtype at the top level, architecture in text_config, as multimodal configs often do
    wrapped = {"architectures": ["SomeVisionModel"], "text_config": text, "torch_dtype": dtype}
    # same Llama-3.1-8B arithmetic as above: 131072 B per token
    assert kv_layout(wrapped).bytes_per_token == 131072


def test_transformers_v5_dtype_key() -> None:
    cfg = config("llama-3.1-8b-instruct")
    cfg["dtype"] = cfg.pop("torch_dtype")
    assert kv_layout(cfg).bytes_per_token == 131072


# --- errors ------------------------------------------------------------------------------------


def test_unknown_kv_dtype_names_the_value() -> None:
    with pytest.raises(KVConfigError, match="'int4'"):
        kv_layout(config("llama-3.1-8b-instruct"), kv_dtype="int4")


def test_kv_config_error_is_a_value_error_and_a_tool_error() -> None:
    assert issubclass(KVConfigError, ValueError)
    assert issubclass(KVConfigError, PdPipelineError)


@pytest.mark.parametrize("key", ["num_hidden_layers", "num_attention_heads", "hidden_size"])
def test_missing_key_is_named(key: str) -> None:
    cfg = config("llama-3.1-8b-instruct")
    del cfg[key]
    with pytest.raises(KVConfigError, match=key):
        kv_layout(cfg)


def test_missing_mla_key_is_named() -> None:
    cfg = config("deepseek-v2-lite")
    del cfg["qk_rope_head_dim"]
    with pytest.raises(KVConfigError, match="qk_rope_head_dim"):
        kv_layout(cfg)


def test_missing_key_in_text_config_says_so() -> None:
    # gemma-3-4b-it's published text_config leaves num_attention_heads to class defaults
    wrapped = {"text_config": {"num_hidden_layers": 34, "hidden_size": 2560}}
    with pytest.raises(KVConfigError, match=r"text_config.*num_attention_heads"):
        kv_layout(wrapped, kv_dtype="bfloat16")


def test_missing_dtype_under_auto_is_named() -> None:
    cfg = config("llama-3.1-8b-instruct")
    del cfg["torch_dtype"]
    with pytest.raises(KVConfigError, match="torch_dtype"):
        kv_layout(cfg)
    # an explicit kv dtype needs no model dtype
    assert kv_layout(cfg, "fp8").bytes_per_token == 65536


def test_unknown_model_dtype_is_named() -> None:
    cfg = config("llama-3.1-8b-instruct")
    cfg["torch_dtype"] = "float8_e4m3fn"
    with pytest.raises(KVConfigError, match="float8_e4m3fn"):
        kv_layout(cfg)


def test_falcon_style_multi_query_is_refused_not_guessed() -> None:
    cfg = config("llama-2-7b-hf")
    del cfg["num_key_value_heads"]
    cfg["multi_query"] = True
    with pytest.raises(KVConfigError, match="multi_query"):
        kv_layout(cfg)


def test_layer_types_of_wrong_length_is_refused() -> None:
    cfg = config("gpt-oss-20b")
    cfg["layer_types"] = cfg["layer_types"][:-1]
    with pytest.raises(KVConfigError, match="layer_types"):
        kv_layout(cfg)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.json"
    with pytest.raises(KVConfigError, match=re.escape(str(missing))):
        load_config(missing)


def test_model_dir_without_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(KVConfigError, match=re.escape(str(tmp_path / "config.json"))):
        load_config(tmp_path)


def test_invalid_json_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(KVConfigError, match=re.escape(str(bad))):
        load_config(bad)


def test_load_config_accepts_a_model_dir(tmp_path: Path) -> None:
    source = CONFIGS / "mistral-7b-v0.1.json"
    (tmp_path / "config.json").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_config(tmp_path) == json.loads(source.read_text(encoding="utf-8"))


# --- links and outputs -------------------------------------------------------------------------


def test_link_catalogue_names_and_rates() -> None:
    by_name = {link.name: link for link in LINK_CATALOGUE}
    assert list(by_name) == [
        "10GbE TCP",
        "25GbE TCP",
        "100Gb RoCE",
        "200Gb RoCE",
        "400Gb RoCE",
        "NVLink4 (H100, 450 GB/s per direction)",
    ]
    # 100 Gb/s * 0.9 / 8 bits = 11.25e9 B/s
    assert by_name["100Gb RoCE"].bytes_per_s == pytest.approx(11.25e9)
    # 450 GB/s = 3600 Gb/s; * 0.8 = 360e9 B/s
    assert by_name["NVLink4 (H100, 450 GB/s per direction)"].bytes_per_s == pytest.approx(360e9)


def test_predicted_transfer_seconds() -> None:
    link = Link("test", gbit_per_s=8.0, efficiency=0.5)
    # 8 Gb/s = 1e9 B/s; half of it = 5e8 B/s; 1e9 B takes 2 s
    assert predicted_transfer_seconds(1_000_000_000, link) == pytest.approx(2.0)


def test_kv_rows_one_per_tokens_and_link() -> None:
    layout = kv_layout(config("llama-3.1-8b-instruct"))
    link = Link("100Gb RoCE", 100.0, 0.9)
    rows = kv_rows(layout, [128, 512], [link])
    # 512 tokens = 67108864 B; / 11.25e9 B/s = 0.0059652323... s
    assert rows == [
        {
            "tokens": 128,
            "bytes": 16777216,  # 131072 * 128
            "link": "100Gb RoCE",
            "link_gbit_per_s": 100.0,
            "predicted_seconds": pytest.approx(16777216 / 11.25e9),
        },
        {
            "tokens": 512,
            "bytes": 67108864,
            "link": "100Gb RoCE",
            "link_gbit_per_s": 100.0,
            "predicted_seconds": pytest.approx(67108864 / 11.25e9),
        },
    ]
    assert len(kv_rows(layout, [128, 512, 4096])) == 3 * len(LINK_CATALOGUE)


def test_kv_cache_json_shape() -> None:
    layout = kv_layout(config("llama-3.1-8b-instruct"))
    doc = kv_cache_json(layout, [128, 512, 4096])
    # 131072 * 128 = 16777216; * 512 = 67108864; * 4096 = 536870912
    assert doc == {
        "bytes_per_token": 131072,
        "rows": [
            {"tokens": 128, "bytes": 16777216},
            {"tokens": 512, "bytes": 67108864},
            {"tokens": 4096, "bytes": 536870912},
        ],
    }
    assert json.loads(json.dumps(doc)) == doc


def test_format_table_lists_sizes_and_every_link() -> None:
    layout = kv_layout(config("mistral-7b-v0.1"))
    table = format_table(layout, [512, 8192])
    assert "131072 bytes/token" in table
    assert "32 of 32 layers keep at most 4096 tokens" in table
    assert "67108864" in table and "536870912" in table  # 512 tokens; 8192 capped at 4096
    assert "64.00" in table and "512.00" in table  # MiB
    for link in LINK_CATALOGUE:
        assert link.name in table
    # 67108864 B over 10GbE at 0.9: / 1.125e9 B/s = 59.65 ms
    assert "59.65 ms" in table


def test_layout_is_frozen() -> None:
    layout = KVLayout("gqa", 32, 2.0, 2048, None, 0, "bfloat16")
    with pytest.raises(AttributeError):
        layout.num_layers = 1  # type: ignore[misc]
