"""Aftersale: a post-purchase engine for Shopify and WooCommerce stores.

Cross-cutting pieces live here (configuration, logging, the canonical event
model, the command line); the stages of the pipeline live in the top-level
packages ``webhooks``, ``connectors``, ``rules``, ``workers`` and ``store``.
"""

__version__ = "0.1.0"
