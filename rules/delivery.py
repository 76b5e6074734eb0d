"""``delivery:`` in ``settings.yaml``: what a store's order statuses mean, and estimated delivery.

Validated here once into :class:`~aftersale.core.platform.DeliverySettings`,
the compiled object connectors (order statuses) and the pipeline and
scheduler (estimates) read. Everything is optional::

    delivery:
      order_statuses:            # merged over the defaults; null removes one
        delivered: shipment.delivered
        shipped: fulfillment.created
        dispatched: fulfillment.created
      estimated_delivery:        # off unless days or countries are given
        days: 5                  # after shipping, for any destination not listed
        countries: {AT: 2, DE: 3, US: 8}
"""

from __future__ import annotations

from types import MappingProxyType

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from aftersale.core.platform import DEFAULT_ORDER_STATUSES, ORDER_STATUS_KINDS, DeliverySettings

DAYS = validate.Range(min=0, max=365, error="days after shipping: a whole number from 0 to 365")
STATUS = validate.Regexp(
    r"^(wc-)?[a-z0-9][a-z0-9_-]{0,39}$",
    error="an order status slug as WooCommerce keeps it (e.g. delivered or wc-delivered)",
)


class EstimateSchema(Schema):
    class Meta:
        unknown = RAISE

    days = fields.Integer(load_default=None, strict=True, validate=DAYS)
    countries = fields.Dict(
        keys=fields.String(
            validate=validate.Regexp(r"^[A-Za-z]{2}$", error="a two-letter country code (AT, US)")
        ),
        values=fields.Integer(strict=True, validate=DAYS),
        load_default=dict,
    )


class DeliverySchema(Schema):
    class Meta:
        unknown = RAISE

    order_statuses = fields.Dict(
        keys=fields.String(validate=STATUS),
        values=fields.String(
            allow_none=True,
            validate=validate.OneOf(
                sorted(ORDER_STATUS_KINDS),
                error="an order status means one of: " + ", ".join(sorted(ORDER_STATUS_KINDS)),
            ),
        ),
        load_default=dict,
    )
    estimated_delivery = fields.Nested(EstimateSchema, load_default=None, allow_none=True)

    @post_load
    def compile(self, data, **kwargs) -> DeliverySettings:
        statuses = dict(DEFAULT_ORDER_STATUSES)
        for status, kind in data["order_statuses"].items():
            slug = status.removeprefix("wc-")  # the webhook's status has no prefix
            if kind is None:
                statuses.pop(slug, None)
            else:
                statuses[slug] = kind
        estimate = data["estimated_delivery"] or {}
        if data["estimated_delivery"] is not None and not (
            estimate.get("days") is not None or estimate.get("countries")
        ):
            raise ValidationError(
                "give days (for any destination) or countries (days per country code)",
                "estimated_delivery",
            )
        return DeliverySettings(
            order_statuses=MappingProxyType(statuses),
            estimate_days=estimate.get("days"),
            estimate_countries=MappingProxyType(
                {code.upper(): days for code, days in (estimate.get("countries") or {}).items()}
            ),
        )


def delivery_field() -> fields.Nested:
    """The ``delivery:`` key of ``SettingsSchema``; absent: the defaults, estimates off."""
    return fields.Nested(DeliverySchema, load_default=DeliverySettings)
