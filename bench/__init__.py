"""Benchmark harness for llmage: mock upstream, wrk driver, comparison with LiteLLM."""
