"""The baseline: an empty Flask endpoint answering 200, served by the same gunicorn settings."""

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/shopify")
    def receive():
        return "", 200

    return app
