"""Rule files: loaded and validated once into compiled rules, evaluated fast per event.

``load_rules(folder)`` returns a :class:`~rules.model.RuleSet` or raises
:class:`~rules.errors.RulesInvalid` listing every problem with its file, line
and column; ``plan(ruleset, event, now)`` returns the actions an event calls for.
"""

from aftersale.rules.engine import PlannedAction, plan
from aftersale.rules.errors import RuleError, RulesInvalid
from aftersale.rules.loader import load_rules
from aftersale.rules.model import Rule, RuleSet, Step

__all__ = [
    "PlannedAction",
    "Rule",
    "RuleError",
    "RuleSet",
    "RulesInvalid",
    "Step",
    "load_rules",
    "plan",
]
