"""The seeds' tenancy tests on real server processes: a tenant's rate quota absorbs its
burst (twice its rate) and then refuses, writing nothing; and one tenant exhausting its
quota leaves another tenant's writes, and the default tenant's, untouched. Counts are
read back from the servers and compared with the writes acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from server_support import SIGNALS, eventually
from tidaldb.servers import LocalServers

RATE = 100  # signals per second; the burst is twice that
NOISY, QUIET = 11, 12


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    tenants = [
        {"id": NOISY, "label": "noisy", "max_signals_per_sec": RATE},
        {"id": QUIET, "label": "quiet", "max_signals_per_sec": RATE},
    ]
    with LocalServers(3, signals=SIGNALS, tenants=tenants) as s:
        yield s


def window_count(client: tidaldb.Client, item: int, tenant: int) -> int:
    return client.window_count("count", item, "30d", tenant=tenant)


def test_a_burst_of_twice_the_rate_is_absorbed_and_the_next_write_refused(cluster: LocalServers) -> None:
    client = cluster.connect([1])
    burst = np.full(2 * RATE, 1, dtype=np.uint64)
    assert client.write_many("count", burst, ts=np.full(2 * RATE, time.time()), tenant=NOISY) == 2 * RATE
    with pytest.raises(tidaldb.QuotaExceeded) as e:
        client.write_many("count", np.full(2 * RATE, 1, dtype=np.uint64), ts=np.full(2 * RATE, time.time()), tenant=NOISY)
    assert type(e.value) is tidaldb.QuotaExceeded
    assert "max_signals_per_sec" in str(e.value) and "retry after" in str(e.value)
    assert window_count(client, 1, NOISY) == 2 * RATE, "the refused call wrote nothing"
    # Every replica holds exactly the acknowledged burst.
    for node in (2, 3):
        other = cluster.connect([node])
        eventually(lambda: window_count(other, 1, NOISY), lambda n: n == 2 * RATE)


def test_a_tenant_at_its_limit_leaves_the_others_untouched(cluster: LocalServers) -> None:
    client = cluster.connect([2])
    with pytest.raises(tidaldb.QuotaExceeded):
        for _ in range(10):  # whatever the first test left, the noisy tenant runs dry
            client.write_many("count", np.full(RATE, 2, dtype=np.uint64), ts=np.full(RATE, time.time()), tenant=NOISY)
    quiet = np.full(2 * RATE, 3, dtype=np.uint64)
    assert client.write_many("count", quiet, ts=np.full(2 * RATE, time.time()), tenant=QUIET) == 2 * RATE
    assert client.write_many("count", quiet, ts=np.full(2 * RATE, time.time())) == 2 * RATE, "the default tenant has no quota"
    assert window_count(client, 3, QUIET) == 2 * RATE
    assert window_count(client, 3, 0) == 2 * RATE
    assert window_count(client, 3, NOISY) == 0, "tenants do not see each other's events"
