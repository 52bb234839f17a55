"""Volcengine Ark (火山方舟): Doubao Seedance video tasks and Seedream images (PROVIDERS.md §3).

`adapter.py` translates; `request.py` builds create bodies and refuses what a model refuses;
`models.py` says what each model family accepts; `errors.py` classifies error codes. BytePlus
ModelArk (`providers/byteplus/`) speaks the same protocol and reuses all of it.
"""
