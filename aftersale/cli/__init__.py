"""The ``aftersale`` command. Each concern is a module here, registered in :func:`main`'s group."""

from __future__ import annotations

import click

from aftersale.cli.errors import Group
from aftersale.core import logs
from aftersale.core.config import Config


class Context:
    """Lazily built config and runtime, shared by the subcommands of one invocation."""

    def __init__(self):
        self._config = None
        self._runtime = None
        #: ``aftersale --debug``: tracebacks with the error messages
        self.debug = False

    @property
    def config(self) -> Config:
        """The Config from the environment; a ConfigError becomes the message (cli.errors)."""
        if self._config is None:
            self._config = Config.from_env()
        return self._config

    @property
    def runtime(self):
        if self._runtime is None:
            # deferred import: each command loads only what it uses (all of them: 2.3 s)
            from aftersale.runtime import Runtime, install

            logs.configure(self.config.log_level, self.config.log_format)
            self._runtime = Runtime(self.config)
            install(self._runtime)
        return self._runtime


pass_context = click.make_pass_decorator(Context, ensure=True)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aftersale")
@click.option(
    "--debug", is_flag=True, help="print the full traceback of an error (or LOG_LEVEL=DEBUG)"
)
@click.pass_context
def cli(click_ctx, debug):
    """Aftersale: post-purchase messages and actions for Shopify and WooCommerce stores.

    Configuration comes from environment variables (DATABASE_URL, REDIS_URL,
    MAIL_URL, RULES_DIR, ...); see the README.
    """
    click_ctx.ensure_object(Context).debug = debug


def build() -> click.Group:
    """The ``aftersale`` group with every command module registered (idempotent)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.cli import (
        actions,
        catalog,
        db,
        deliveries,
        links,
        mail,
        rules,
        run,
        shopify,
        shops,
        status,
        sync,
        templates,
        testing,
    )

    for module in (
        *(run, db, rules, templates, links, testing, actions, shops, shopify, mail),
        *(deliveries, status, sync, catalog),
    ):
        module.register(cli)
    return cli


def main() -> None:
    build()(prog_name="aftersale")
