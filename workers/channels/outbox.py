"""The file outbox: each email is written as an ``.eml`` file, the embedded default.

Useful out of the box (open the files with any mail client) and in tests; a
real channel, not a fake: the bytes written are the bytes SMTP would carry.
Files are written atomically (temp file, then rename), named by time and
Message-ID so a resend after a crash overwrites rather than duplicates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from aftersale.workers.channels.base import Channel, PermanentError, SendResult
from aftersale.workers.mail import OutgoingEmail


class FileOutbox(Channel):
    name = "file"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def open(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        return False

    def path_for(self, message_id: str) -> Path:
        """Where the message with this Message-ID is (or would be) written."""
        return self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<>")) + ".eml")

    def send(self, messages: Sequence[OutgoingEmail]) -> list[SendResult]:
        self.open()
        results = []
        for message in messages:
            if not message["To"]:
                raise PermanentError("message has no recipient")
            message_id = message["Message-ID"] or f"<msg-{os.getpid()}-{id(message)}>"
            path = self.path_for(message_id)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(message.as_bytes())
            tmp.replace(path)
            results.append(SendResult(provider_id=message_id, response=str(path)))
        return results
