"""A capturing SMTP server for the notification tests (PyPI `aiosmtpd`).

Every accepted message is written to DIR as one JSON file per recipient: envelope sender and
recipient, Subject, Message-ID, and the decoded text and HTML parts. Recipients whose address
starts with REJECT_PREFIX are refused at RCPT TO with a permanent 550.

    python smtp_capture.py PORT DIR [REJECT_PREFIX]
"""
import asyncio
import email
import email.policy
import json
import os
import signal
import sys
import uuid

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, directory, reject_prefix):
        self.directory = directory
        self.reject_prefix = reject_prefix

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_prefix and address.startswith(self.reject_prefix):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        for rcpt in envelope.rcpt_tos:
            record = {
                "mail_from": envelope.mail_from,
                "to": rcpt,
                "subject": str(msg.get("Subject", "")),
                "message_id": str(msg.get("Message-ID", "")),
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
            }
            name = uuid.uuid4().hex
            tmp = os.path.join(self.directory, "." + name + ".tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(self.directory, name + ".json"))
        return "250 Message accepted for delivery"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    reject_prefix = sys.argv[3] if len(sys.argv) > 3 else ""
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Capture(directory, reject_prefix), hostname="127.0.0.1", port=port)
    controller.start()
    loop = asyncio.new_event_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.run_until_complete(stop)
    controller.stop()


if __name__ == "__main__":
    main()
