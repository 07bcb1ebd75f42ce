"""Synthetic requests: exact token counts by the model's own tokenizer, reproducible by seed."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path

import pytest

from pdpipeline.loadgen.workload import (
    RequestSpec,
    RequestStream,
    TextPrompts,
    TokenIdPrompts,
    build_requests,
    iter_requests,
    load_prompt_source,
)
from pdpipeline.profile import Lengths


# Module scope: loading the tokenizer and scanning its vocabulary takes seconds, not the tests.
@pytest.fixture(scope="module")
def completions(tiny_model: Path) -> TextPrompts:
    source = load_prompt_source(str(tiny_model), "completions")
    assert isinstance(source, TextPrompts)
    return source


@pytest.fixture(scope="module")
def chat(tiny_model: Path) -> TextPrompts:
    source = load_prompt_source(str(tiny_model), "chat")
    assert isinstance(source, TextPrompts)
    return source


def completion_tokens(source: TextPrompts, prompt: str) -> int:
    # What the server counts for /v1/completions: the text encoded with special tokens (BOS).
    return len(source.tokenizer.encode(prompt))


def chat_tokens(source: TextPrompts, content: str) -> int:
    ids = source.tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=True, add_generation_prompt=True
    )
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.mark.parametrize("length", ["2", "64", "512", "2:300"])
def test_completion_prompts_have_the_exact_token_count(completions: TextPrompts, length: str):
    requests = build_requests(completions, 20, Lengths.parse(length), Lengths(16, 16), seed=3)
    lengths = Lengths.parse(length)
    for request in requests:
        assert isinstance(request.prompt, str)
        assert lengths.lo <= request.prompt_tokens <= lengths.hi
        assert completion_tokens(completions, request.prompt) == request.prompt_tokens


@pytest.mark.parametrize("length", ["15", "128", "20:400"])
def test_chat_prompts_have_the_exact_token_count(chat: TextPrompts, length: str):
    requests = build_requests(chat, 20, Lengths.parse(length), Lengths(16, 16), seed=3)
    for request in requests:
        assert chat_tokens(chat, request.prompt) == request.prompt_tokens


def test_ranged_lengths_vary_within_bounds(completions: TextPrompts):
    requests = build_requests(completions, 40, Lengths(10, 200), Lengths(1, 8), seed=0)
    assert len({r.prompt_tokens for r in requests}) > 10
    assert {r.output_tokens for r in requests} <= set(range(1, 9))
    assert len({r.output_tokens for r in requests}) > 1
    assert [r.index for r in requests] == list(range(40))


def test_prompt_shorter_than_the_template_is_refused(chat: TextPrompts):
    overhead = chat_tokens(chat, "")
    with pytest.raises(ValueError, match=f"{overhead}-token overhead"):
        chat.make(overhead, random.Random(0))


def test_same_seed_and_salt_give_identical_requests(completions: TextPrompts):
    args = (completions, 8, Lengths(32, 128), Lengths(4, 16))
    assert build_requests(*args, seed=7, salt="point-a") == build_requests(
        *args, seed=7, salt="point-a"
    )


def test_other_salt_or_seed_gives_other_prompts(completions: TextPrompts):
    args = (completions, 8, Lengths(64, 64), Lengths(4, 4))
    base = [r.prompt for r in build_requests(*args, seed=7, salt="a")]
    other_salt = [r.prompt for r in build_requests(*args, seed=7, salt="b")]
    other_seed = [r.prompt for r in build_requests(*args, seed=8, salt="a")]
    # Not one prompt in common: a later run cannot hit a prefix cache the earlier one filled.
    assert set(base).isdisjoint(other_salt)
    assert set(base).isdisjoint(other_seed)
    assert len(set(base)) == len(base)


def test_token_id_prompts_are_in_range_and_exact():
    source = TokenIdPrompts(vocab_size=8192)
    requests = build_requests(source, 30, Lengths(1, 300), Lengths(8, 8), seed=0)
    for request in requests:
        assert isinstance(request.prompt, list)
        assert len(request.prompt) == request.prompt_tokens
        # Low ids are usually special tokens; the source keeps above 1000 and inside the vocab.
        assert all(1000 <= token < 8192 for token in request.prompt)


def test_token_id_prompts_fit_a_small_vocabulary():
    source = TokenIdPrompts(vocab_size=100)
    prompt = source.make(500, random.Random(0))
    assert len(prompt) == 500
    assert all(50 <= token < 100 for token in prompt)


@pytest.fixture
def config_only_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 5000}))
    return tmp_path


def test_dir_without_tokenizer_gives_token_id_prompts(config_only_dir: Path):
    source = load_prompt_source(str(config_only_dir), "completions")
    assert isinstance(source, TokenIdPrompts)
    (request,) = build_requests(source, 1, Lengths(40, 40), Lengths(4, 4), seed=0)
    assert len(request.prompt) == 40
    assert all(1000 <= token < 5000 for token in request.prompt)


def test_dir_without_tokenizer_refuses_chat(config_only_dir: Path):
    with pytest.raises(ValueError, match="no tokenizer"):
        load_prompt_source(str(config_only_dir), "chat")


def test_iter_requests_continues_build_requests(completions: TextPrompts):
    lengths = (Lengths(20, 60), Lengths(4, 4))
    endless = iter_requests(completions, *lengths, seed=7, salt="p")
    first = [next(endless) for _ in range(12)]
    assert first == build_requests(completions, 12, *lengths, seed=7, salt="p")


async def test_a_stream_builds_ahead_in_order_off_the_event_loop():
    built_on: list[int] = []

    def requests():
        for i in range(10):
            built_on.append(threading.get_ident())
            yield RequestSpec(i, [i], 1, 1)

    stream = RequestStream(requests(), ready=2, ahead=3)
    assert stream.ready == 2
    taken = [await stream.next()]
    await asyncio.sleep(0.05)  # the top-up runs while the run waits on its requests
    assert stream.ready == 3
    while (spec := await stream.next()) is not None:
        taken.append(spec)
    assert [spec.index for spec in taken] == list(range(10))
    main = threading.get_ident()
    # The two built before the run on the caller's thread; every later one in a worker.
    assert built_on[:2] == [main, main] and main not in built_on[2:]
    await stream.aclose()
