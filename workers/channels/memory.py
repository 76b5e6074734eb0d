"""An in-memory channel: keeps sent messages in a list (``memory://``), for embedding and tests."""

from __future__ import annotations

from collections.abc import Sequence

from aftersale.workers.channels.base import Channel, SendResult


class MemoryChannel(Channel):
    name = "memory"

    def __init__(self):
        self.outbox: list = []

    def send(self, messages: Sequence) -> list[SendResult]:
        self.outbox.extend(messages)
        return [
            SendResult(provider_id=m["Message-ID"] if hasattr(m, "get") else f"memory-{n}")
            for n, m in enumerate(messages, start=len(self.outbox) - len(messages) + 1)
        ]
