"""Benchmarks of LLM prefill/decode disaggregation against single and replicated serving."""
