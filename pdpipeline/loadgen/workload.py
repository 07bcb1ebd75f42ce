"""Synthetic requests of exact token lengths, the same for every arm given the same seed."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pdpipeline.profile.workload import Lengths

Api = Literal["completions", "chat"]
Prompt = str | list[int]

_WORD = re.compile(r"^ [A-Za-z]{2,12}$")


@dataclass(frozen=True)
class RequestSpec:
    index: int
    prompt: Prompt  # completion text, chat message content, or token ids
    prompt_tokens: int  # exact count the server must report
    output_tokens: int


class TextPrompts:
    """Prompts of whole words from the model's own vocabulary, counted by its own tokenizer.

    Words are vocabulary tokens of the form ' word' that round-trip alone; the byte-level
    pre-tokenizer splits on those spaces, so a prompt's length is its word count plus the fixed
    overhead of special tokens or the chat template, and every length is checked, not assumed.
    """

    def __init__(self, tokenizer, api: Api = "completions") -> None:
        self.tokenizer = tokenizer
        self.api = api
        self.words = self._words()
        if len(self.words) < 100:
            raise ValueError("tokenizer has too few plain-word tokens to build prompts")

    def _words(self) -> list[str]:
        words = []
        for token_id in range(self.tokenizer.vocab_size):
            text = self.tokenizer.decode([token_id])
            if _WORD.match(text) and self._encode(text) == [token_id]:
                words.append(text)
        return words

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def count(self, content: str) -> int:
        """Prompt tokens the server will see for this content."""
        if self.api == "chat":
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=True, add_generation_prompt=True
            )
            return len(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return len(self.tokenizer.encode(content))

    def make(self, n_tokens: int, rng: random.Random) -> str:
        overhead = self.count("")
        n_words = n_tokens - overhead
        if n_words < 1:
            raise ValueError(
                f"prompt of {n_tokens} tokens is shorter than the {overhead}-token overhead"
            )
        words = [rng.choice(self.words) for _ in range(n_words)]
        content = "".join(words).lstrip()
        # Stripping the first word's space may split it differently; top up or trim until exact.
        for _ in range(8):
            actual = self.count(content)
            if actual == n_tokens:
                return content
            if actual < n_tokens:
                content += "".join(rng.choice(self.words) for _ in range(n_tokens - actual))
            else:
                content = " ".join(content.split(" ")[: -(actual - n_tokens)])
        raise ValueError(f"could not build a prompt of exactly {n_tokens} tokens")


class TokenIdPrompts:
    """Token-id prompts for model dirs without a tokenizer (servers run --skip-tokenizer-init)."""

    api: Api = "completions"

    def __init__(self, vocab_size: int, first_id: int = 1000) -> None:
        # Low ids are often special or control tokens; stay above them.
        self.low, self.high = min(first_id, vocab_size // 2), vocab_size - 1

    def make(self, n_tokens: int, rng: random.Random) -> list[int]:
        return [rng.randint(self.low, self.high) for _ in range(n_tokens)]


PromptSource = TextPrompts | TokenIdPrompts


def build_requests(
    source: PromptSource,
    count: int,
    input_len: Lengths,
    output_len: Lengths,
    seed: int,
    salt: str = "",
) -> list[RequestSpec]:
    """`count` requests determined only by (seed, salt, lengths): every arm gets the same ones.

    Different salts (workload point, repeat, warm-up) give different prompts, so no request can
    hit a prefix cache filled by an earlier one.
    """
    return list(itertools.islice(iter_requests(source, input_len, output_len, seed, salt), count))


def iter_requests(
    source: PromptSource, input_len: Lengths, output_len: Lengths, seed: int, salt: str = ""
) -> Iterator[RequestSpec]:
    """`build_requests` without an end: its first `count` are `build_requests`' `count`."""
    rng = random.Random(f"{seed}/{salt}/{input_len}/{output_len}")
    for index in itertools.count():
        n_in, n_out = input_len.draw(rng), output_len.draw(rng)
        yield RequestSpec(index, source.make(n_in, rng), n_in, n_out)


class RequestStream:
    """Requests for a run whose length is not known in advance (a window to fill).

    Some are built before the run starts (`ready`, `prepare`); while it runs, `ahead` more are
    kept built in a worker thread, so a request is there the moment a slot frees. A long prompt
    takes milliseconds to build and count: on the event loop that would delay reading the
    tokens of the requests in flight, and waiting for it would leave a slot empty.
    """

    def __init__(self, requests: Iterable[RequestSpec], ready: int = 0, ahead: int = 0) -> None:
        self.ahead = ahead
        self._rest = iter(requests)
        self._ready = collections.deque(itertools.islice(self._rest, ready))
        self._exhausted = False
        # One generator cannot run in two threads at once.
        self._building = asyncio.Lock()
        self._topping_up: asyncio.Task | None = None

    @property
    def ready(self) -> int:
        """Requests built and not yet taken."""
        return len(self._ready)

    def prepare(self, count: int) -> None:
        """Have `count` requests built before the run."""
        self._ready.extend(itertools.islice(self._rest, max(0, count - len(self._ready))))

    async def next(self) -> RequestSpec | None:
        """The next request; None when there are no more."""
        if not self._ready and not self._exhausted:
            await self._build_one()
        if not self._ready:
            return None
        spec = self._ready.popleft()
        if len(self._ready) < self.ahead and not self._exhausted and not self._is_topping_up:
            self._topping_up = asyncio.create_task(self._top_up())
        return spec

    async def aclose(self) -> None:
        """Stop building ahead: the run is over."""
        if self._topping_up is not None:
            self._topping_up.cancel()
            await asyncio.gather(self._topping_up, return_exceptions=True)

    @property
    def _is_topping_up(self) -> bool:
        return self._topping_up is not None and not self._topping_up.done()

    async def _top_up(self) -> None:
        while len(self._ready) < self.ahead and not self._exhausted:
            await self._build_one()

    async def _build_one(self) -> None:
        async with self._building:
            spec = await asyncio.to_thread(next, self._rest, None)
            # Appended under the lock, so requests stay in the order they were built.
            if spec is None:
                self._exhausted = True
            else:
                self._ready.append(spec)


def load_prompt_source(model_dir: str, api: Api) -> PromptSource:
    """Text prompts from the model dir's tokenizer, or token ids when it has none."""
    if (Path(model_dir) / "tokenizer.json").exists() or (
        Path(model_dir) / "tokenizer_config.json"
    ).exists():
        from transformers import AutoTokenizer

        return TextPrompts(AutoTokenizer.from_pretrained(model_dir), api)
    if api == "chat":
        raise ValueError(f"{model_dir} has no tokenizer: chat prompts need one")
    vocab = json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"]
    return TokenIdPrompts(vocab)
