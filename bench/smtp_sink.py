"""A local SMTP server for benchmarks: accepts every message and logs when it arrived.

    python bench/smtp_sink.py PORT LOGFILE

Each accepted message appends "<unix time>\\t<Message-ID>\\t<Subject>" to LOGFILE.
It runs in its own process so the load generator's threads cannot delay it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from email import policy
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, log):
        self.log = log
        # policy.default decodes RFC 2047 encoded words (non-ASCII subjects)
        self.parser = BytesHeaderParser(policy=policy.default)

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        headers = self.parser.parsebytes(envelope.original_content or envelope.content)
        subject = " ".join(str(headers.get("Subject", "")).split())
        self.log.write(f"{arrived:.6f}\t{headers.get('Message-ID', '')}\t{subject}\n")
        self.log.flush()
        return "250 OK"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "a", buffering=1) as log:
        controller = Controller(Sink(log), hostname="127.0.0.1", port=port)
        controller.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        print("ready", flush=True)
        stop.wait()
        controller.stop()


if __name__ == "__main__":
    main()
