"""BytePlus ModelArk: Dreamina Seedance on Ark's protocol (PROVIDERS.md §4), its own hosts.

Only what differs from Volcengine Ark lives here (`adapter.py`): the host, the model ids
(`dreamina-seedance-*`, `seedance-1-5-pro-*`, `seedream-*`), where reference mode is routed, and
that a 403 means the model is not available to the account (the overseas rollout comes and
goes). Everything else is `providers/ark/`.
"""
