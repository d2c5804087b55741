"""A throwaway PostgreSQL server for the RDB storage tests, started from the machine's binaries.

`KERAS_SMELU_TEST_POSTGRES_URL` points the tests at an existing server instead (they create
uniquely named studies, so a shared database is fine). Otherwise the server binaries
(`initdb`, `pg_ctl`; on PATH or in Debian's `/usr/lib/postgresql/*/bin`) start a cluster in a
temporary folder on a free loopback port, with trust authentication, stopped at the end. As
root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

URL_VARIABLE = "KERAS_SMELU_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise PostgresUnavailable(
            f"no `{name}` (install the PostgreSQL server, or set {URL_VARIABLE})"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as() -> tuple[list[str], int | None]:
    """The command prefix and uid to run the server with: ourselves, or `postgres` as root."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        raise PostgresUnavailable("running as root and there is no `postgres` user") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and there is no `runuser`")
    return [runuser, "-u", "postgres", "--"], uid


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """Yields an SQLAlchemy URL of a PostgreSQL database the tests may write to.

    Raises:
        PostgresUnavailable: with the reason, when there is neither a server nor a driver.
    """
    if importlib.util.find_spec("psycopg2") is None:
        raise PostgresUnavailable("no PostgreSQL driver (pip install psycopg2-binary)")
    if os.environ.get(URL_VARIABLE):
        yield os.environ[URL_VARIABLE]
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    prefix, uid = _run_as()
    folder = tempfile.mkdtemp(prefix="keras-smelu-postgres-")
    data = os.path.join(folder, "data")
    if uid is not None:
        os.chown(folder, uid, -1)
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed: {done.stdout}{done.stderr}")

    try:
        run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        run(
            pg_ctl,
            "-D",
            data,
            "-l",
            os.path.join(folder, "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                capture_output=True,
                cwd=folder,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
