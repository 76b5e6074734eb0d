"""The ground floor: what every other package stands on, importing nothing of ours above it.

Canonical events, typed errors, the clock, encryption, signed links, storefront
URLs, configuration, structured logs, recipient addresses and the one HTTP
session helper. Installed as ``aftersale.core``; a test (tests/test_layering.py)
fails when anything here imports a package above it.
"""
