"""OpenAI-style media upstreams: `/videos` (Sora 2 and resellers) and `/images` (PROVIDERS §8)."""
