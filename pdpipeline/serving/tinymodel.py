"""A tiny Llama-architecture model directory built locally: config plus a trained BPE tokenizer.

No weights: servers load it with `--load-format dummy` (random weights). Compute per token is
that of a real (small) Llama, which is all a serving benchmark on a CPU needs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

VOCAB_SIZE = 8192
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
BOS_ID, EOS_ID, PAD_ID = 0, 1, 2

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<{{ message['role'] }}>: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>: {% endif %}"
)

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
}


def _training_text(limit_bytes: int = 8_000_000) -> Iterator[str]:
    """Python sources of the standard library: local, deterministic, plenty of text."""
    total = 0
    stdlib = Path(sys.modules["json"].__file__).parent.parent
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(errors="ignore")
        total += len(text)
        yield text
        if total > limit_bytes:
            return


def build_tiny_model(out_dir: str | Path) -> Path:
    """Write config.json, generation_config.json and the tokenizer files into out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL_TOKENS[BOS_ID],
        eos_token=SPECIAL_TOKENS[EOS_ID],
        pad_token=SPECIAL_TOKENS[PAD_ID],
        add_bos_token=True,
        model_max_length=CONFIG["max_position_embeddings"],
        chat_template=CHAT_TEMPLATE,
    )
    wrapped.save_pretrained(out)
    _add_bos_post_processor(out / "tokenizer.json")
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2))
    generation = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    return out


def _add_bos_post_processor(tokenizer_json: Path) -> None:
    """Prepend BOS when special tokens are added, as Llama tokenizers do."""
    data = json.loads(tokenizer_json.read_text())
    bos = SPECIAL_TOKENS[BOS_ID]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [BOS_ID], "tokens": [bos]}},
    }
    tokenizer_json.write_text(json.dumps(data))


def is_built(model_dir: str | Path) -> bool:
    model = Path(model_dir)
    return (model / "config.json").is_file() and (model / "tokenizer.json").is_file()
