"""``recommend:`` in settings.yaml: how the goes-with model and repurchase cycles are kept.

```yaml
recommend:
  min_support: 2          # a pair counts once bought together in this many orders
  refresh: 1h             # the scheduler recomputes each shop's model this often (0: never)
  min_observations: 3     # repurchase_due trusts a cycle seen at least this often
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from aftersale.rules.durations import parse_duration


@dataclass(frozen=True)
class RecommendSettings:
    min_support: int = 2
    refresh: timedelta = timedelta(hours=1)
    min_observations: int = 3


class _Duration(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if value in (0, "0"):
            return timedelta(0)
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(f"{exc}; e.g. refresh: 1h (0 turns it off)") from exc


class RecommendSchema(Schema):
    class Meta:
        unknown = RAISE

    min_support = fields.Integer(load_default=2, validate=validate.Range(min=1))
    refresh = _Duration(load_default=timedelta(hours=1))
    min_observations = fields.Integer(load_default=3, validate=validate.Range(min=1))

    @post_load
    def compile(self, data, **kwargs) -> RecommendSettings:
        return RecommendSettings(**data)
