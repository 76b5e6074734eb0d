"""The executor interface and what it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import TemplateError

from aftersale.core.events import Event
from aftersale.rules.model import Settings
from aftersale.workers.channels.base import SendResult
from aftersale.workers.render import TemplateProblem


@dataclass
class ActionContext:
    """Everything known about an action at the moment it runs."""

    action: object  # the actions row
    event: Event
    shop: object  # the shops row
    customer: dict  # the customer as stored now (consent may have changed since the event)
    template_context: dict  # what templates see
    settings: Settings  # the shop's settings, resolved once (rules/settings.py)
    reads: object = None  # the job's reads (workers/job_reads.py), or None: read each alone


@dataclass
class Prepared:
    """A message or call ready to go, with what the action row records about it."""

    channel: str
    recipient: str | None
    subject: str | None
    payload: object
    message_id: str | None = None


class Executor(ABC):
    step: str
    #: later steps of the same rule wait for this one and see its result in their templates
    provides_result: bool = False
    #: its send only talks to a channel (no database, no shop session), so a job may send it
    #: on the sender thread while it prepares the next action (workers/send_ahead.py)
    sends_alongside: bool = False

    @abstractmethod
    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        """Render and check; ``conn`` is a read connection for policy look-ups."""

    @abstractmethod
    def send(self, runtime, prepared: Prepared) -> SendResult:
        """Hand over to the channel; raise TransientError or PermanentError."""


def render_inline(runtime, text: str, context: dict, what: str) -> str:
    """Render a short template written in the rule itself (an SMS text, a note, a webhook field)
    in the same sandbox and with the same strict names and filters as template files."""
    try:
        return _compiled(runtime.renderer.env, text).render(context)
    except TemplateError as exc:
        raise TemplateProblem(f"{what}: {exc}") from exc


@lru_cache(maxsize=512)
def _compiled(env, text: str):
    return env.from_string(text)
