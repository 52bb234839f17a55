"""Aliyun DashScope (Bailian): Wan video, HappyHorse video and qwen-image (PROVIDERS.md §2).

One asynchronous protocol for every model: create with `X-DashScope-Async: enable`
(`POST /services/aigc/.../video-synthesis` or `.../image-synthesis`), poll `GET /tasks/{id}`,
cancel `POST /tasks/{id}/cancel` (PENDING only), list `GET /tasks` (the recovery of a create whose
outcome is unknown). Files: `models.py` (which model, endpoint and protocol serve a job; what each
model refuses), `bodies.py` (request bodies), `replies.py` (task replies: statuses, outputs,
usage), `errors.py` (error codes → kinds), `adapter.py` (the adapter itself).
"""
