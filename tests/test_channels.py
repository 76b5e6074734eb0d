"""Each channel end to end against its local stand-in: SMTP (STARTTLS, SSL, auth, reuse),
Postmark, Twilio and outbound webhooks, driven by real workers."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import ssl
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug import Response

from aftersale.core.errors import PermanentError, TransientError
from aftersale.runtime import Runtime, install
from aftersale.store.messages import address_hash
from aftersale.store.tables import actions, messages, suppressions
from aftersale.workers.channels.smtp import SMTPChannel
from aftersale.workers.mail import OutgoingEmail
from aftersale.workers.runner import make_worker
from tests.action_helpers import hand_off, plant, store_event
from tests.conftest import free_port
from tests.helpers import load_fixture, rows

ORDER = load_fixture("shopify", "orders__create")


# -- SMTP -------------------------------------------------------------------------


def self_signed(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


class Recorder:
    """Keeps each message with the connection (peer) it came on, and logins; 550 for bounce@."""

    def __init__(self):
        self.messages, self.peers, self.logins = [], [], []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        self.peers.append(session.peer)
        return "250 2.0.0 queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"shop", b"s3cret")
        self.logins.append((mechanism, auth_data.login, ok))
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_tls(tmp_path):
    """An SMTP server that requires STARTTLS before AUTH, and one speaking TLS from the start."""
    context = self_signed(tmp_path)
    recorder = Recorder()
    starttls = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=recorder.authenticate,
        auth_require_tls=True,
    )
    implicit = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=context,
        authenticator=recorder.authenticate,
        auth_require_tls=False,
    )
    starttls.start()
    implicit.start()
    yield recorder, starttls, implicit
    starttls.stop()
    implicit.stop()


def mail(to: str, n: int = 1) -> OutgoingEmail:
    return OutgoingEmail(
        sender="Shop <shop@example.com>",
        to=to,
        subject=f"Hello {n}",
        text="text",
        html="<p>html</p>",
        message_id=f"<test-{n}@example.com>",
        date=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )


def test_smtp_starttls_and_auth_reuse_one_connection(smtp_tls):
    recorder, server, _ = smtp_tls
    channel = SMTPChannel.from_url(
        f"smtp://shop:s3cret@127.0.0.1:{server.port}?starttls=1&verify=0"
    )
    with channel:
        results = [channel.send([mail("ana@example.com", n)])[0] for n in range(3)]
    assert [r.provider_id for r in results] == [f"<test-{n}@example.com>" for n in range(3)]
    assert len(recorder.messages) == 3 and len(set(recorder.peers)) == 1
    assert recorder.logins and all(ok for _, login, ok in recorder.logins)


def test_smtps_implicit_tls(smtp_tls):
    recorder, _, server = smtp_tls
    channel = SMTPChannel.from_url(f"smtps://shop:s3cret@127.0.0.1:{server.port}?verify=0")
    with channel:
        channel.send([mail("ana@example.com")])
    assert len(recorder.messages) == 1


def test_smtp_wrong_password_is_permanent_and_a_verified_certificate_is_required(smtp_tls):
    _, server, _ = smtp_tls
    with pytest.raises(PermanentError, match="login refused"):
        SMTPChannel.from_url(
            f"smtp://shop:wrong@127.0.0.1:{server.port}?starttls=1&verify=0"
        ).open()
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        SMTPChannel.from_url(f"smtp://shop:s3cret@127.0.0.1:{server.port}?starttls=1").open()


def test_smtp_reply_codes_decide_retrying(smtp_tls):
    _, server, _ = smtp_tls
    channel = SMTPChannel.from_url(
        f"smtp://shop:s3cret@127.0.0.1:{server.port}?starttls=1&verify=0"
    )
    with channel:
        with pytest.raises(PermanentError, match="550"):
            channel.send([mail("bounce@example.com")])
        with pytest.raises(TransientError, match="451"):
            channel.send([mail("busy@example.com")])
        channel.send([mail("ana@example.com")])  # the connection is still usable


def test_worker_reuses_one_smtp_connection_across_jobs(config, clock, smtp_tls):
    recorder, server, _ = smtp_tls
    rt = Runtime(
        config.replace(mail_url=f"smtp://shop:s3cret@127.0.0.1:{server.port}?starttls=1&verify=0"),
        clock,
    )
    install(rt)
    try:
        shop_id, event_id, event = store_event(rt)
        ids = plant(rt, shop_id, event_id, event, [("email", {"template": "thank_you"})], count=3)
        for action_id in ids:  # one job each
            hand_off(rt, [action_id])
        make_worker(rt).work(burst=True, logging_level="WARNING", with_scheduler=False)
    finally:
        rt.close()
        install(None)
    assert len(recorder.messages) == 3 and len(set(recorder.peers)) == 1


# -- HTTP channels -----------------------------------------------------------------


@pytest.fixture
def http_runtime(config, clock, httpserver):
    base = f"127.0.0.1:{httpserver.port}"
    rt = Runtime(
        config.replace(
            mail_url=f"postmark+http://pm-token@{base}?stream=post-purchase",
            sms_url=f"twilio+http://AC123:twilio-token@{base}?from=%2B15005550006",
            webhook_secret="hook-secret",
        ),
        clock,
    )
    install(rt)
    yield rt
    rt.close()
    install(None)


def run(rt, ids):
    hand_off(rt, ids)
    make_worker(rt).work(burst=True, logging_level="WARNING", with_scheduler=False)


def test_postmark_gets_the_composed_mail(http_runtime, httpserver):
    seen = []

    def postmark(request):
        seen.append((request.headers, request.get_json()))
        return Response(
            json.dumps({"MessageID": "pm-1", "ErrorCode": 0, "Message": "OK"}),
            content_type="application/json",
        )

    httpserver.expect_request("/email", method="POST").respond_with_handler(postmark)
    shop_id, event_id, event = store_event(http_runtime)
    run(
        http_runtime,
        plant(http_runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})]),
    )

    ((headers, body),) = seen
    assert headers["X-Postmark-Server-Token"] == "pm-token"
    assert body["To"] == ORDER["email"] and body["MessageStream"] == "post-purchase"
    assert body["Subject"] == f"Hvala na porudžbini {ORDER['name']}"  # the customer writes sr
    assert ORDER["line_items"][0]["title"] in body["TextBody"]
    assert ORDER["line_items"][0]["title"] in body["HtmlBody"]
    assert body["ReplyTo"] == "help@example.com"
    names = {h["Name"] for h in body["Headers"]}
    assert {"Message-ID", "X-Aftersale-Rule"} <= names
    (action,) = rows(http_runtime.engine, actions)
    assert (action.status, action.provider_id) == ("sent", "pm-1")


def twilio_path():
    return "/2010-04-01/Accounts/AC123/Messages.json"


def test_twilio_sms_to_a_consenting_customer_in_e164(http_runtime, httpserver):
    seen = []

    def twilio(request):
        seen.append((request.authorization, parse_qs(request.get_data(as_text=True))))
        return Response(
            json.dumps({"sid": "SM0123456789abcdef", "status": "queued"}),
            status=201,
            content_type="application/json",
        )

    httpserver.expect_request(twilio_path(), method="POST").respond_with_handler(twilio)
    rt = http_runtime
    shop_id, event_id, event = store_event(rt, customer_changes={"accepts_sms_marketing": True})
    step = ("sms", {"text": "Hi {{ customer.first_name }}, order {{ order.name }} is on its way."})
    run(rt, plant(rt, shop_id, event_id, event, [step]))

    ((auth, form),) = seen
    assert (auth.username, auth.password) == ("AC123", "twilio-token")
    assert form["To"] == ["+381641234567"] and form["From"] == ["+15005550006"]
    assert form["Body"] == [f"Hi Ana, order {ORDER['name']} is on its way."]
    (action,) = rows(rt.engine, actions)
    assert (action.status, action.provider_id, action.recipient) == (
        "sent",
        "SM0123456789abcdef",
        "+381641234567",
    )
    (attempt,) = rows(rt.engine, messages)
    assert (attempt.channel, attempt.status_code) == ("sms", 201)


def test_marketing_sms_without_consent_is_skipped(http_runtime, httpserver):
    rt = http_runtime
    shop_id, event_id, event = store_event(rt, customer_changes={"accepts_sms_marketing": False})
    run(rt, plant(rt, shop_id, event_id, event, [("sms", {"text": "hi"})], category="marketing"))
    (action,) = rows(rt.engine, actions)
    assert (action.status, action.skip_reason) == ("skipped", "no_consent")
    assert httpserver.log == []


def test_sms_to_an_invalid_number_fails_without_calling_twilio(http_runtime, httpserver):
    rt = http_runtime
    shop_id, event_id, event = store_event(
        rt, customer_changes={"accepts_sms_marketing": True, "phone": "+381 12"}
    )
    run(rt, plant(rt, shop_id, event_id, event, [("sms", {"text": "hi"})]))
    (action,) = rows(rt.engine, actions)
    assert action.status == "failed" and "invalid phone number" in action.last_error
    assert httpserver.log == []


def test_twilio_refusal_is_permanent_with_its_code(http_runtime, httpserver):
    httpserver.expect_request(twilio_path(), method="POST").respond_with_json(
        {
            "code": 21610,
            "message": "Attempt to send to unsubscribed recipient",
            "more_info": "https://www.twilio.com/docs/errors/21610",
            "status": 400,
        },
        status=400,
    )
    rt = http_runtime
    shop_id, event_id, event = store_event(rt, customer_changes={"accepts_sms_marketing": True})
    run(rt, plant(rt, shop_id, event_id, event, [("sms", {"text": "hi"})]))
    (action,) = rows(rt.engine, actions)
    assert action.status == "failed" and "21610" in action.last_error
    (suppressed,) = rows(rt.engine, suppressions)
    assert (suppressed.channel, suppressed.address, suppressed.reason) == (
        "sms",
        address_hash(rt.config.secret_key, "+381641234567"),  # a keyed hash, not the number
        "unsubscribed",
    )
    # the next SMS to that number is not even tried
    run(rt, plant(rt, shop_id, event_id, event, [("sms", {"text": "hi"})], rule="later"))
    later = rows(rt.engine, actions, actions.c.rule == "later")[0]
    assert (later.status, later.skip_reason) == ("skipped", "suppressed")
    assert len(httpserver.log) == 1


def test_webhook_is_signed_over_the_exact_bytes(http_runtime, httpserver):
    seen = []

    def receiver(request):
        seen.append((request.headers, request.get_data()))
        return Response("ok", status=200)

    httpserver.expect_request("/hooks/slack", method="POST").respond_with_handler(receiver)
    rt = http_runtime
    shop_id, event_id, event = store_event(rt)
    body = {"text": "Order {{ order.name }} for {{ order.total_price | money(order.currency) }}"}
    steps = [
        ("webhook", {"url": httpserver.url_for("/hooks/slack"), "body": body}),
        ("webhook", {"url": httpserver.url_for("/hooks/slack")}),
    ]
    ids = plant(rt, shop_id, event_id, event, steps)
    run(rt, ids)

    (h1, raw1), (h2, raw2) = seen
    for headers, raw in seen:
        expected = "sha256=" + hmac.new(b"hook-secret", raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Aftersale-Signature"], expected)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Aftersale-Event"] == "order.created"
    assert h1["X-Aftersale-Delivery"] == f"action-{ids[0]}"
    assert json.loads(raw1)["text"].startswith(f"Order {ORDER['name']} for ")
    default = json.loads(raw2)
    assert default["event"]["kind"] == "order.created" and default["rule"] == "test-rule"
    assert default["event"]["order"]["name"] == ORDER["name"]
    assert [a.status for a in rows(rt.engine, actions)] == ["sent", "sent"]


@pytest.mark.parametrize(
    ("status", "final"), [(302, "failed"), (410, "failed"), (503, "scheduled")]
)
def test_webhook_answers_decide_retrying(http_runtime, httpserver, status, final):
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "no", status=status, headers={"Location": "https://elsewhere.example"}
    )
    rt = http_runtime
    shop_id, event_id, event = store_event(rt)
    run(
        rt, plant(rt, shop_id, event_id, event, [("webhook", {"url": httpserver.url_for("/hook")})])
    )
    (action,) = rows(rt.engine, actions)
    assert action.status == final and f"HTTP {status}" in action.last_error


def test_a_shops_own_sender_and_reply_to_win(runtime, work, smtp_server):
    from tests.action_helpers import configure_shop

    shop_id, event_id, event = store_event(runtime)
    configure_shop(
        runtime, shop_id, sender="Ana's Shop <hello@anas.example>", reply_to="care@anas.example"
    )
    run(runtime, plant(runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})]))
    (message,) = smtp_server.handler.messages
    assert message["From"] == "Ana's Shop <hello@anas.example>"
    assert message["Reply-To"] == "care@anas.example"
    assert smtp_server.handler.envelopes[0].mail_from == "hello@anas.example"


def test_smtp_reconnects_after_the_server_dropped_the_connection(smtp_tls):
    recorder, server, _ = smtp_tls
    channel = SMTPChannel.from_url(
        f"smtp://shop:s3cret@127.0.0.1:{server.port}?starttls=1&verify=0"
    )
    with channel:
        channel.send([mail("ana@example.com", 1)])
        channel.connection.sock.shutdown(socket.SHUT_RDWR)  # the idle connection is dropped
        channel.send([mail("ana@example.com", 2)])
    assert len(recorder.messages) == 2 and len(set(recorder.peers)) == 2


def test_a_webhook_url_token_stays_out_of_errors(http_runtime):
    port = free_port()  # nothing listens here
    rt = http_runtime
    shop_id, event_id, event = store_event(rt)
    url = f"http://127.0.0.1:{port}/services/T000/B000/sekr1tToken"
    run(rt, plant(rt, shop_id, event_id, event, [("webhook", {"url": url})]))
    (action,) = rows(rt.engine, actions)
    assert action.status == "scheduled"
    assert (
        action.last_error
        == f"webhook: cannot connect to 127.0.0.1:{port}: [Errno 111] Connection refused"
    )
    assert "sekr1t" not in rows(rt.engine, messages)[0].error


@pytest.mark.parametrize(
    "subject",
    [
        "Хвала на поруџбини #1042",
        "Спасибо за заказ #1042 в магазине Уютный дом — ждём вас снова! 🎉 " * 3,
        "Zamówienie #1042: dziękujemy_za zakupy = 100% (a?b) ",
        "Ş" * 120,
    ],
)
@pytest.mark.parametrize("name", ["Subject", "X-Aftersale-A-Very-Long-Header-Name-Indeed"])
def test_non_ascii_headers_are_encoded_words_that_read_back_whole(name, subject):
    """Q-encoded UTF-8, split between whole characters, every line within RFC 2047's 76
    characters; a mail reader gets the text back exactly (spaces folded into one)."""
    from email import message_from_bytes, policy

    from aftersale.workers.mail import encoded_words

    encoded = encoded_words(name, " ".join(subject.split()))
    lines = f"{name}: {encoded}".split("\r\n")
    assert all(len(line) <= 76 for line in lines[1:]) and len(lines[0]) <= max(76, len(name) + 46)
    assert all(line.startswith(" =?utf-8?q?") for line in lines[1:])
    parsed = message_from_bytes(f"{name}: {encoded}\r\n\r\n".encode(), policy=policy.default)
    assert str(parsed[name]) == " ".join(subject.split())


def test_outgoing_email_encodes_names_subjects_and_keeps_long_links_whole():
    from email import message_from_bytes, policy

    url = "https://shop.example.com/u/" + "x" * 300
    message = OutgoingEmail(
        sender="Prodavnica Čarapa <shop@example.com>",
        to="Ana Petrović <ana@exämple.com>",
        subject="Хвала на поруџбини #1042",
        text="Zdravo Ana,\nhvala.",
        html="<p>Zdravo <b>Ana</b></p>",
        message_id="<action-1.1@example.com>",
        date=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        reply_to="help@example.com",
        headers={
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    raw = message.as_bytes()
    assert raw.isascii() and b"\r\n" in raw
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert b"Content-Type: multipart/alternative" in head and b"--=_aftersale" not in head
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = message_from_bytes(raw, policy=policy.default)
    assert str(parsed["Subject"]) == "Хвала на поруџбини #1042"
    assert parsed["From"].addresses[0].display_name == "Prodavnica Čarapa"
    assert parsed["To"].addresses[0].domain == "xn--exmple-cua.com"
    assert parsed["List-Unsubscribe"] == f"<{url}>"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Zdravo Ana,\nhvala."
    assert "<b>Ana</b>" in parsed.get_body(("html",)).get_content()
    assert (
        message["Message-ID"] == "<action-1.1@example.com>"
        and message["reply-to"] == "help@example.com"
    )
