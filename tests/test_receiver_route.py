"""The webhook route in front of Flask (webhooks/route.py): same answers, the rest left to Flask."""

from __future__ import annotations

import io

import pytest

from aftersale.store.tables import deliveries
from aftersale.webhooks.route import ReceiverRoute
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, fixture_bytes, post_shopify, shopify_headers

TOPIC = "orders/create"


@pytest.fixture
def body():
    return fixture_bytes("shopify", "orders__create")


class CountingFlask:
    """Stands between the route and Flask's own WSGI app, counting what reaches Flask."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def flask_side(app):
    route = app.wsgi_app
    assert isinstance(route, ReceiverRoute)
    route.flask_app = CountingFlask(route.flask_app)
    return route.flask_app


def test_a_webhook_post_is_answered_before_flask_and_stored(client, app, runtime, body, flask_side):
    response = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="route-1")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(response.data))
    assert response.json["status"] == "stored" and response.json["delivery"] > 0
    assert flask_side.calls == 0
    app.extensions["aftersale.receiver"].writer.drain()
    assert count(runtime.engine, deliveries) == 1


def test_an_unknown_platform_is_404_with_a_reason(client, runtime, body, flask_side):
    response = client.post("/webhooks/nosuchplatform", data=body)
    assert response.status_code == 404
    assert response.json == {"status": "rejected", "reason": "unknown platform 'nosuchplatform'"}
    assert flask_side.calls == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/webhooks/shopify", 405),  # only POST is a webhook
        ("POST", "/webhooks/shopify/", 404),  # no shop after the slash: Flask's routing decides
        ("POST", "/webhooks/shopify//x", 308),  # Flask merges the slashes and redirects
    ],
)
def test_other_requests_go_to_flask_as_before(client, method, path, status, flask_side):
    assert client.open(path, method=method).status_code == status
    assert flask_side.calls == 1


def test_a_body_shorter_than_its_content_length_is_400_and_not_stored(client, app, runtime, body):
    headers = shopify_headers(TOPIC, body, SHOPIFY_SECRET)
    response = client.post(
        "/webhooks/shopify",
        input_stream=io.BytesIO(body[:100]),
        headers=headers,
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 400
    assert "shorter than its Content-Length" in response.json["reason"]
    app.extensions["aftersale.receiver"].writer.drain()
    assert count(runtime.engine, deliveries) == 0
