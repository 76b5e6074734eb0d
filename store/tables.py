"""The schema. Alembic migrations in ``store/migrations`` create exactly these tables.

Deliveries are the durable inbox (what the platform sent, verbatim); events
are what it meant; actions are what Aftersale decided to do and when; messages
record every send attempt. Order and customer state let connectors diff
coalesced updates and let rules ask about history.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
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
