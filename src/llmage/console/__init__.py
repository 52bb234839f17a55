"""The web console's backend: the JSON API under /api/ (accounts, sessions, keys, webhook
secret) and the dependencies every console route uses (session.py).

An edge like dialects/: it parses, authenticates and translates, and calls services; it never
imports db/ or storage/.
"""
