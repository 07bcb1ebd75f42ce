"""model: the checkpoint every instance serves, and where the controller finds its tokenizer."""

from __future__ import annotations

from pdpipeline.profile.strict import Strict


class Model(Strict):
    dir: str
    served_name: str
    dtype: str | None = None
    kv_cache_dtype: str = "auto"
    load_format: str | None = None
    skip_tokenizer_init: bool = False
    # Where the controller finds the tokenizer (or config.json for token-id prompts) to build
    # requests; defaults to `dir`, which then must exist on the controller too.
    tokenizer: str | None = None

    @property
    def tokenizer_dir(self) -> str:
        return self.tokenizer or self.dir
