"""Vidu (生数科技) video generation: text2video, img2video, start-end2video, reference2video on
`/ent/v2`, `Token` auth, credits as usage, the task id echoed in `payload` (PROVIDERS.md §5)."""
