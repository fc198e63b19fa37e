"""A real PostgreSQL server for the tests that need one.

`CROSSROADS_TEST_POSTGRES_URL` names a running server (CI's `.ci/run` starts one). Otherwise the tests
start a throwaway server from the installed Debian binaries (as user `postgres` when run as root), and
stop it at the end. Where PostgreSQL is not installed the tests that need it are skipped, saying so.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from broker.cli.demo import free_port

NOT_INSTALLED = (
    "PostgreSQL is not installed here: install Debian's `postgresql` package (as `.ci/run` does) "
    "or set CROSSROADS_TEST_POSTGRES_URL to a server, to run the PostgreSQL-backed tests"
)


@dataclass
class Server:
    url: str  # postgresql+asyncpg://user@host:port/db
    stop: list[str] | None = None  # command that stops a server the tests started
    base: Path | None = None  # the directory of a server the tests started: its data, socket and log

    def close(self) -> None:
        """Stop a server the tests started and remove its directory (a benchmark's data runs to gigabytes)."""
        if self.stop is not None:
            subprocess.run(self.stop, capture_output=True, timeout=60)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, database: str) -> str:
        base = self.url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
        return f"{base}/{database}"

    async def new_database(self) -> str:
        """A fresh, empty database on the server; its SQLAlchemy URL."""
        name = f"crossroads_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(self.dsn("postgres"))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def start() -> Server | str:
    """A server to test against, or the reason there is none."""
    url = os.environ.get("CROSSROADS_TEST_POSTGRES_URL")
    if url:
        return Server(url)
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs:
        return NOT_INSTALLED
    bindir = Path(bindirs[-1])
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="crossroads-pg-"))
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--home", "/var/lib/postgresql", "postgres"], check=True)
        shutil.chown(base, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    initdb = subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
    )
    if initdb.returncode != 0:
        return f"initdb failed: {initdb.stderr.strip()[-300:]}"
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    started = subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(base / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        return f"PostgreSQL did not start: {(base / 'server.log').read_text()[-300:]}"
    stop = [*run_as, str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop"]
    return Server(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", stop, base)
