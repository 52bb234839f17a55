"""Rate and concurrency limits: in-process buckets, Redis buckets, and the limiter in front."""
