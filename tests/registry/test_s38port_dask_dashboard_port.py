"""The local Dask cluster of `fhirtis cohort --engine dask` asked for the dashboard's default
port 8787 (its scheduler serves HTTP there even without a dashboard): with 8787 taken (a
Jupyter dashboard, another cohort run on the machine) distributed warned "Port 8787 is already
in use. Perhaps you already have a cluster running?" on the run's terminal, and where warnings
are errors (this test suite) the cluster did not start at all (seen: two concurrent runs on one
machine). It now asks for any free port, on the loopback only, as before."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _port_taken(port: int) -> Iterator[None]:
    """``port`` on 127.0.0.1 held by a listener for the block (already held: left so)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass  # taken by another process already: the case under test
        yield
    finally:
        sock.close()


def test_the_local_cluster_starts_beside_a_taken_dashboard_port() -> None:
    from distributed import Client  # noqa: PLC0415

    from fhirtis.registry.dask_engine import local_cluster  # noqa: PLC0415

    with _port_taken(8787), warnings.catch_warnings():
        warnings.simplefilter("error")
        with local_cluster(1) as cluster, Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result() == 3
            host, port = cluster.scheduler.http_server.address, cluster.scheduler.http_server.port
    assert port != 8787
    assert host == "127.0.0.1"  # loopback only
