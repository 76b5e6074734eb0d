"""The schema. Alembic migrations in ``store/migrations`` create exactly these tables.

Deliveries are the durable inbox (what the platform sent, verbatim); events
are what it meant; actions are what Aftersale decided to do and when; messages
record every send attempt. Order and customer state let connectors diff
coalesced updates and let rules ask about history.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from aftersale.store.types import Id, Json, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

shops = Table(
    "shops",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("name", String(255)),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("credentials", LargeBinary),  # Fernet token of a JSON object; never logged
    Column("settings", Json),
    Column("timezone", String(64)),
    Column("locale", String(35)),
    Column("currency", String(3)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # when the shop last granted access (install link, shops add-*): migration 0007
    Column("installed_at", UTCDateTime),
    # the last webhook registration or listing, and what was wrong then (NULL: healthy)
    Column("webhooks_checked_at", UTCDateTime),
    Column("webhooks_error", String(500)),
    # the platform refused to renew the token: the shop must install again
    Column("access_error", String(500)),
    UniqueConstraint("platform", "domain", name="uq_shops_platform_domain"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("dedupe_key", String(255), nullable=False),
    Column("delivery_id", String(255)),
    Column("event_id", String(255)),
    Column("api_version", String(32)),
    Column("triggered_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("headers", Json),
    Column("body", LargeBinary, nullable=False),
    # pending -> queued -> processed | ignored | stale | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("enqueued_at", UTCDateTime),
    Column("job_id", String(64)),  # the RQ job carrying it, to tell a lost job from a slow one
    Column("processed_at", UTCDateTime),
    Column("error", Text),
    UniqueConstraint("shop_id", "dedupe_key", name="uq_deliveries_shop_dedupe_key"),
    UniqueConstraint("shop_id", "topic", "event_id", name="uq_deliveries_shop_topic_event_id"),
    Index("ix_deliveries_status_received_at", "status", "received_at"),
)

order_states = Table(
    "order_states",
    metadata,
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("order_ref", String(128), primary_key=True),
    Column("customer_ref", String(128)),
    Column("version", UTCDateTime),  # the platform's updated_at / date_modified_gmt
    Column("order", Json, nullable=False),  # the latest canonical order dict
    Column(
        "extra", Json, nullable=False
    ),  # connector bookkeeping (seen refunds, shipment statuses)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_ref", String(128), primary_key=True),
    Column("email", String(320)),
    Column("phone", String(64)),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("locale", String(35)),
    Column("accepts_email_marketing", Boolean),
    Column("accepts_sms_marketing", Boolean),
    Column("consent_updated_at", UTCDateTime),
    Column("tags", Json),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("redacted_at", UTCDateTime),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL")),
    Column("kind", String(64), nullable=False),
    Column("event_key", String(255), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("order_ref", String(128)),
    Column("customer_ref", String(128)),
    Column("fulfillment_ref", String(128)),
    Column("payload", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("shop_id", "kind", "event_key", name="uq_events_shop_kind_key"),
    Index("ix_events_shop_order", "shop_id", "order_ref"),
    Index("ix_events_shop_customer_kind", "shop_id", "customer_ref", "kind"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Id, ForeignKey("events.id", ondelete="SET NULL")),
    Column("rule", String(128), nullable=False),
    Column("step", Integer, nullable=False),
    Column("action_type", String(32), nullable=False),
    Column("params", Json, nullable=False),
    Column("category", String(16), nullable=False),
    Column("order_ref", String(128)),
    Column("customer_ref", String(128)),
    Column("fulfillment_ref", String(128)),
    Column("once_key", String(255)),
    # scheduled | waiting | queued | running | sent | skipped | failed | dead
    Column("status", String(16), nullable=False),
    Column("skip_reason", String(32)),
    Column("due_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime),  # past this, a late action is skipped, not sent
    Column("cancel_on", Json),
    Column("wait_for", Json),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="5"),
    Column("queued_at", UTCDateTime),
    Column("job_id", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("recipient", String(320)),
    Column("subject", Text),
    Column("provider_id", String(255)),
    Column("last_error", Text),
    Column("result", Json),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("once_key", name="uq_actions_once_key"),
    Index("ix_actions_status_due_at", "status", "due_at"),
    Index("ix_actions_shop_order", "shop_id", "order_ref"),
    Index("ix_actions_shop_customer", "shop_id", "customer_ref"),
    # later steps of a rule look up earlier ones; `actions show` walks event -> actions
    Index("ix_actions_event_id", "event_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("action_id", Id, ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("recipient", String(320)),
    Column("subject", Text),
    Column("message_id", String(255)),  # RFC 5322 Message-ID, stable across retries
    # sent | transient_error | permanent_error | lost (the worker died mid-attempt)
    Column("status", String(20), nullable=False),
    Column("provider_id", String(255)),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response", Text),  # truncated provider answer
    Column("duration_ms", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_messages_action_id", "action_id"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),  # email | sms
    Column("address", String(320), nullable=False),  # lower-cased email or E.164 number
    Column("reason", String(32), nullable=False),  # unsubscribed | bounced | complaint | manual
    Column("source", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("shop_id", "channel", "address", name="uq_suppressions_shop_channel_address"),
)

link_clicks = Table(
    "link_clicks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("action_id", Id, ForeignKey("actions.id", ondelete="SET NULL")),
    Column("kind", String(16), nullable=False),  # review | help | unsubscribe | track
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_link_clicks_action_id", "action_id"),
)

consumed_tokens = Table(
    "consumed_tokens",
    metadata,
    # single-use tokens (the WooCommerce key exchange's user_id) already spent; store/tokens.py
    Column("purpose", String(32), primary_key=True),
    Column("digest", String(64), primary_key=True),  # sha256 hex: the token itself is not kept
    Column("consumed_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # the token's own end; prunable after
    Index("ix_consumed_tokens_expires_at", "expires_at"),
)

# -- 0006_body_hash: Shopify acceptance and consent --------------------------------------
# Appended, not written into the tables above, so that this change stays one block.

#: SHA-256 (hex) of a delivery's body: a second dedupe key per shop and topic. Shopify signs
#: only the body, so a captured delivery re-sent under a new webhook id is still the same body.
deliveries.append_column(Column("body_hash", String(64)))
deliveries.append_constraint(
    UniqueConstraint("shop_id", "topic", "body_hash", name="uq_deliveries_shop_topic_body_hash")
)

customer_consents = Table(
    "customer_consents",
    metadata,
    # a customer's marketing consent per channel as the platform last said it (store/state.py);
    # ``consent_updated_at`` orders updates, so an older one arriving late changes nothing
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_ref", String(128), primary_key=True),
    Column("channel", String(16), primary_key=True),  # email | sms
    Column("state", String(32)),  # subscribed | not_subscribed | unsubscribed | pending | ...
    Column("opt_in_level", String(32)),  # single_opt_in | confirmed_opt_in | unknown
    Column("consent_updated_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- 0008_shipment_tracking: estimated delivery (issue 20) ---------------------------------

delivery_estimates = Table(
    "delivery_estimates",
    metadata,
    # one per parcel of a shop whose settings estimate delivery (rules/estimates.py): the
    # scheduler emits an estimated shipment.delivered at due_at unless a real signal came first
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("fulfillment_ref", String(128), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # pending | emitted | cancelled
    Column("note", String(255)),  # why it was cancelled (a real shipment.in_transit, ...)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("shop_id", "fulfillment_ref", name="uq_delivery_estimates_shop_parcel"),
    Index("ix_delivery_estimates_status_due", "status", "due_at"),
    Index("ix_delivery_estimates_shop_order", "shop_id", "order_ref"),
)

# -- 0009_preferences: the preference centre (issue 21) ------------------------------------

#: the marketing sub-category an action was planned under (core/preferences.py); NULL for
#: transactional actions and for marketing ones planned before sub-categories existed
actions.append_column(Column("subcategory", String(32)))

preferences = Table(
    "preferences",
    metadata,
    # one customer's choice for one marketing sub-category, from the preference page
    # (store/preferences.py); erased with the customer (keyed by shop_id and customer_ref)
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_ref", String(128), primary_key=True),
    Column("subcategory", String(32), primary_key=True),
    Column("muted", Boolean, nullable=False),
    Column("source", String(64), nullable=False),  # where the choice was made: page:action-12
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- 0010_rule_lifecycle: rules keep their promises (issue 22) -----------------------------

#: a short hash of the rule definition that planned the action (`actions show` names it)
actions.append_column(Column("rule_version", String(16)))
#: the rule's ``on_disable`` when it planned: what to do if the rule is later removed
actions.append_column(Column("on_disable", String(8)))
#: ``cancel_on`` kinds with ``scope: customer``: they cancel on any order of the customer
actions.append_column(Column("cancel_on_customer", Json))
#: ``digest``: the open digest's key (rule, order or customer); one row collects the window
actions.append_column(Column("digest_key", String(255)))
#: ``digest``: the events folded into this action, [{event_id, kind, key, subject}]
actions.append_column(Column("digest", Json))
actions.append_constraint(Index("ix_actions_shop_digest_key", "shop_id", "digest_key"))
actions.append_constraint(Index("ix_actions_shop_rule_status", "shop_id", "rule", "status"))

# -- 0011_observability: why a rule did not act (issue 23) ---------------------------------

rule_misses = Table(
    "rule_misses",
    metadata,
    # one row per event and rule of its kind that did not match: the first failing check and
    # the value it saw (customer fields masked), kept RULE_MISS_DAYS (store/why_not.py)
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Id, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("failed_check", String(500), nullable=False),
    Column("actual", String(255)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_rule_misses_event_id", "event_id"),
    Index("ix_rule_misses_created_at", "created_at"),
)

# -- 0012_reconcile: never miss an event (issue 24) -----------------------------------------

#: what stored the delivery: NULL for a webhook, ``reconcile`` or ``backfill`` for a run that
#: asked the platform's API (workers/reconcile.py)
deliveries.append_column(Column("source", String(16)))

shop_syncs = Table(
    "shop_syncs",
    metadata,
    # one per shop and kind (``orders``): how far reconciliation got (store/syncs.py)
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    # the platform's modification time up to which every order is processed
    Column("cursor", UTCDateTime),
    Column("next_run_at", UTCDateTime),  # claimed by the scheduler with a check-and-set
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("status", String(16)),  # running | ok | failed
    Column("summary", Json),  # the last run: orders, deliveries, events, repaired webhooks, error
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- 0013_catalog: know the customer (issue 25) ---------------------------------------------

products = Table(
    "products",
    metadata,
    # the shop's catalog, from product webhooks and `aftersale catalog sync` (store/catalog.py)
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("product_ref", String(128), primary_key=True),
    Column("title", String(500)),
    Column("handle", String(255)),  # Shopify's URL handle, WooCommerce's slug
    Column("url", String(2000)),  # WooCommerce's permalink; Shopify's comes from the handle
    Column("image_url", String(2000)),
    Column("image_alt", String(500)),
    Column("price", String(32)),  # a Decimal string, in the shop's currency
    Column("currency", String(3)),  # when the platform names it (neither product body does)
    Column("product_type", String(255)),  # Shopify product_type; WooCommerce first category
    Column("categories", Json),  # WooCommerce category names; Shopify [product_type]
    Column("tags", Json),
    Column("vendor", String(255)),
    Column("published", Boolean, nullable=False),
    Column("in_stock", Boolean, nullable=False),
    Column("platform_updated_at", UTCDateTime),  # the platform's updated_at: older is stale
    Column("updated_at", UTCDateTime, nullable=False),
)

order_lines = Table(
    "order_lines",
    metadata,
    # one row per order and product: what the goes-with model and repurchase cycles count
    # (store/catalog.py keeps it from every stored order, webhook, reconcile or backfill)
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("order_ref", String(128), primary_key=True),
    Column("product_ref", String(128), primary_key=True),
    Column("customer_ref", String(128)),
    Column("product_type", String(255)),
    Column("quantity", Integer, nullable=False),
    Column("price", String(32)),
    Column("currency", String(3)),
    Column("ordered_at", UTCDateTime, nullable=False),
    #: ``ordered_at`` as Unix seconds: day arithmetic the same on SQLite and PostgreSQL
    Column("ordered_epoch", BigInteger, nullable=False),
    Index("ix_order_lines_shop_customer", "shop_id", "customer_ref"),
    Index("ix_order_lines_shop_product", "shop_id", "product_ref"),
)

product_stats = Table(
    "product_stats",
    metadata,
    # per product: how many orders had it (the support behind confidence, lift, best-sellers)
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("product_ref", String(128), primary_key=True),
    Column("orders", Integer, nullable=False),
    Column("product_type", String(255)),
    Column("computed_at", UTCDateTime, nullable=False),
    # best-sellers overall and of a type, read at send time (store/goes_with.py fallbacks)
    Index("ix_product_stats_shop_orders", "shop_id", "orders"),
    Index("ix_product_stats_shop_type_orders", "shop_id", "product_type", "orders"),
)

product_pairs = Table(
    "product_pairs",
    metadata,
    # bought together: orders with both, P(other | product), and lift over chance
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("product_ref", String(128), primary_key=True),
    Column("other_ref", String(128), primary_key=True),
    Column("together", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("lift", Float, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
)

repurchase_cycles = Table(
    "repurchase_cycles",
    metadata,
    # median days between repeat purchases by one customer, per product or product type
    Column("shop_id", Id, ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True),
    Column("scope", String(8), primary_key=True),  # product | type
    Column("ref", String(255), primary_key=True),
    Column("median_days", Float, nullable=False),
    Column("observations", Integer, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
)
