"""Shared pieces of the benchmarks: private services, gunicorn, wrk, and a results table."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "AFTERSALE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


@contextmanager
def redis_server():
    """A private redis-server (no persistence), like the tests use."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def database(kind: str):
    """A fresh, migrated database: a SQLite file or a throw-away PostgreSQL database."""
    from sqlalchemy import create_engine, text

    from aftersale.store import migrate

    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="bench-db-"))
        url = f"sqlite:///{folder / 'aftersale.db'}"
        migrate.upgrade(url)
        install_demo_shop(url)
        try:
            yield url
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"aftersale_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    install_demo_shop(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


BENCH_SHOP = "aftersale-demo.myshopify.com"
BENCH_SECRET_KEY = "bench-secret-key"


def install_demo_shop(database_url: str) -> None:
    """The shop the benches post for, installed as Shopify's install would leave it: the
    receiver accepts Shopify webhooks only from shops that installed the app."""
    from datetime import UTC, datetime

    from aftersale.store import shops as shop_store
    from aftersale.store.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            shop_store.install_placeholder(
                conn,
                "shopify",
                BENCH_SHOP,
                (BENCH_SECRET_KEY,),
                {"placeholder": "bench"},
                datetime.now(UTC),
            )
    finally:
        engine.dispose()


def aftersale_env(database_url: str, redis_url: str, instance: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        INSTANCE_PATH=str(instance),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SHOPIFY_API_SECRET=SECRET,
        SECRET_KEY=BENCH_SECRET_KEY,
        LOG_LEVEL="INFO",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def import_root(tree: Path, folder: Path) -> Path:
    """A folder to put first on PYTHONPATH so ``aftersale`` imports from another checkout.

    ``tree`` is laid out as this repository (for instance ``git archive <ref>`` unpacked,
    or a copy of a working tree); its setup.cfg's ``package_dir`` maps the top-level
    folders into the ``aftersale`` namespace, rebuilt here with symlinks. For A/B runs
    of two versions of the code in one bench run.
    """
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(tree / "setup.cfg")
    root = folder / "import-root"
    package = root / "aftersale"
    package.mkdir(parents=True, exist_ok=True)
    for entry in (tree / "aftersale").iterdir():
        (package / entry.name).symlink_to(entry)
    for line in cfg["options"]["package_dir"].split("\n"):
        name, _, source = (part.strip() for part in line.partition("="))
        if name.count(".") == 1 and name.startswith("aftersale."):
            target = package / name.split(".", 1)[1]
            if not target.exists():
                target.symlink_to(tree / source)
    return root


@contextmanager
def gunicorn(app: str, env: dict, *, workers: int, threads: int, log_path: Path, cwd=ROOT):
    """gunicorn as the web process ran before granian (bench/gunicorn_baseline.py): the
    server of the ingest target's baseline, the empty Flask endpoint."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:bench.gunicorn_baseline",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        app,
    ]
    with _serving(command, env, port, log_path, cwd) as served:
        yield served


@contextmanager
def web_server(env: dict, *, workers: int, threads: int, log_path: Path, cwd=ROOT):
    """The web process as production runs it: ``aftersale web`` (granian, with its settings
    in aftersale/web_server.py); only the address, workers and threads are set here.

    The threads go in WEB_THREADS, which an older checkout's ``aftersale web`` (gunicorn,
    for ``--before`` runs) read too.
    """
    port = free_port()
    command = [sys.executable, "-m", "aftersale", "web", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    env = {**env, "WEB_THREADS": str(threads)}
    with _serving(command, env, port, log_path, cwd) as served:
        yield served


@contextmanager
def granian_wsgi(app: str, env: dict, *, workers: int, threads: int, log_path: Path, cwd=ROOT):
    """A WSGI app factory (``module:function``) under granian with the web process's
    server settings: for a reference row, the empty endpoint on the receiver's server."""
    port = free_port()
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--blocking-threads", str(threads), "--http", "1", "--no-ws"]
    command += ["--backlog", "2048", "--log-level", "warning", app]
    with _serving(command, env, port, log_path, cwd) as served:
        yield served


@contextmanager
def _serving(command: list[str], env: dict, port: int, log_path: Path, cwd):
    """Run a server in its own process group until the block ends; (base URL, process)."""
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found = []
        for task in tasks:
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by a process and all its descendants (Linux).

    Read before and after a load run, the difference over the requests
    answered is the server's CPU cost per request: what says whether a
    slower target is slower because of work or because of waiting.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        todo += _children(pid)
    return total


def database_cpu_seconds(engine) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends serving ``engine``'s database, read
    from /proc (the server runs on this machine in every bench); None for SQLite, or when the
    server's processes are not readable from here."""
    if engine.dialect.name != "postgresql":
        return None
    from sqlalchemy import text

    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        readable = [pid for pid in pids if Path(f"/proc/{pid}/stat").exists()]
    if not readable:
        return None
    return sum(tree_cpu_seconds(pid) for pid in readable)


def require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if not path:
        sys.exit(f"{binary} not found: {hint}")
    return path


def run_wrk(url: str, script: Path, *, duration: int, connections: int, threads: int = 2) -> dict:
    """Run wrk; parse requests/s, latency percentiles and error counts."""
    out = subprocess.run(
        [
            require("wrk", "apt-get install -y wrk"),
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"raw": out}
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if match:
            value, unit = float(match.group(1)), match.group(2)
            result[f"p{pct}_ms"] = (
                value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
            )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(g) for g in errors.groups()) if errors else 0
    return result


def wait_ready(url: str, path: str = "/healthz", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url + path, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
