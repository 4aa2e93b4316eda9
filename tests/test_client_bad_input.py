"""Bad input to the client: refused with the exact exception class, and nothing written."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from conftest import T0
from server_support import servers
from tidaldb.servers import LocalServers


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with servers(1) as s:
        yield s


@pytest.mark.parametrize("weight", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_and_write_nothing(cluster: LocalServers, weight: float) -> None:
    client = cluster.connect()
    with pytest.raises(tidaldb.InvalidArgument, match="weight"):
        client.write("view", 1, weight=weight, ts=T0)
    with pytest.raises(tidaldb.InvalidArgument):
        client.write_many("view", np.array([2, 3], dtype=np.uint64), weights=np.array([1.0, weight]), ts=np.array([T0, T0]))
    assert client.scores("view", np.array([1, 2, 3], dtype=np.uint64), at=T0).tolist() == [0.0, 0.0, 0.0]


def test_unknown_names_are_not_found(cluster: LocalServers) -> None:
    client = cluster.connect()
    with pytest.raises(tidaldb.NotFound, match="nope"):
        client.write("nope", 1, ts=T0)
    with pytest.raises(tidaldb.NotFound, match="no window 30d"):
        client.window_count("view", 1, "30d")  # view keeps 1h and 24h only
    with pytest.raises(tidaldb.InvalidArgument):
        client.window_count("view", 1, "1y")


def test_bad_arguments_raise_before_anything_is_sent(cluster: LocalServers) -> None:
    client = cluster.connect()
    with pytest.raises(tidaldb.InvalidArgument, match="write concern"):
        client.write("view", 1, ts=T0, write_concern="quorum")
    with pytest.raises(TypeError, match="write_concern"):
        client.write("view", 1, ts=T0, write_concern=1.5)  # type: ignore[arg-type]
    with pytest.raises(tidaldb.InvalidArgument, match="item"):
        client.write("view", -1, ts=T0)
    with pytest.raises(tidaldb.InvalidArgument, match="weights"):
        client.write_many("view", np.array([1, 2], dtype=np.uint64), weights=np.array([1.0]))


def test_connecting_needs_tls_or_an_explicit_insecure(cluster: LocalServers) -> None:
    addr = cluster.nodes[0].client_addr
    with pytest.raises(tidaldb.InvalidArgument, match="insecure=True"):
        tidaldb.connect(addr)
    with pytest.raises(TypeError, match="tidaldb.TLS"):
        tidaldb.connect(addr, tls=("a", "b", "c"))  # type: ignore[arg-type]
    with pytest.raises(tidaldb.InvalidArgument, match="cluster id"):
        tidaldb.connect(addr, cluster_id="other", tls=cluster.tls())
    with pytest.raises(tidaldb.InvalidArgument, match="cannot read"):
        tidaldb.connect(addr, tls=tidaldb.TLS("/nonexistent/ca.pem", "x", "y"))
    with pytest.raises(tidaldb.Unavailable):
        # A TLS server does not speak to a client without a certificate.
        tidaldb.connect(addr, insecure=True, timeout=2.0)
