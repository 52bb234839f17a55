"""Signed, expiring download links for re-hosted media."""
