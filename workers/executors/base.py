"""The executor interface and what it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from aftersale.events import Event
from workers.channels.base import SendResult


@dataclass
class ActionContext:
    """Everything known about an action at the moment it runs."""

    action: object  # the actions row
    event: Event
    shop: object  # the shops row
    customer: dict  # the customer as stored now (consent may have changed since the event)
    template_context: dict  # what templates see


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

    @abstractmethod
    def prepare(self, runtime, conn, ctx: ActionContext) -> Prepared:
        """Render and check; ``conn`` is a read connection for policy look-ups."""

    @abstractmethod
    def send(self, runtime, prepared: Prepared) -> SendResult:
        """Hand over to the channel; raise TransientError or PermanentError."""
