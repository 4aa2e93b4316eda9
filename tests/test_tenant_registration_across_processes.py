"""A tenant registered while three server processes run: the control plane commits it, the
processes of its regions open its replicas (and only they: the others keep no file of it),
its writes replicate among them, a hosting process that restarts serves it again, and its
quotas hold. Bad registrations are refused and commit nothing. Counts are compared with
the writes the servers acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from server_support import control_servers, eventually, hosts_of, settled_commands
from tidaldb.servers import LocalServers

RESIDENT, CAPPED = 40, 41


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with control_servers() as s:
        yield s


def count(client: tidaldb.Client, item: int, tenant: int) -> int:
    return client.window_count("count", item, "30d", tenant=tenant)


def test_a_registered_tenant_lives_only_on_the_nodes_of_its_regions(cluster: LocalServers) -> None:
    outside, *inside = cluster.nodes
    admin = cluster.connect([n.id for n in cluster.nodes])
    admin.register_tenant(RESIDENT, regions=[n.region for n in inside], label="resident")
    assert hosts_of(admin, RESIDENT) == [n.id for n in inside]
    writer = cluster.connect([inside[0].id])
    # The replica opens on the control plane's order, within about a second.
    eventually(lambda: _try_count(writer, 1, RESIDENT), lambda n: n == 0)
    items = np.full(50, 1, dtype=np.uint64)
    assert writer.write_many("count", items, ts=np.full(50, time.time()), tenant=RESIDENT) == 50
    reader = cluster.connect([inside[1].id])
    eventually(lambda: _try_count(reader, 1, RESIDENT), lambda n: n == 50)
    # The node outside the tenant's regions neither serves it nor keeps a file of it.
    with pytest.raises(tidaldb.NotFound) as e:
        count(cluster.connect([outside.id]), 1, RESIDENT)
    assert type(e.value) is tidaldb.NotFound
    assert not (outside.dir / "data" / f"tenant-{RESIDENT}").exists()
    assert (inside[0].dir / "data" / f"tenant-{RESIDENT}").is_dir()


def test_a_hosting_node_that_restarts_serves_the_tenant_again(cluster: LocalServers) -> None:
    node = cluster.nodes[2]
    client = cluster.connect([node.id])
    before = eventually(lambda: _try_count(client, 1, RESIDENT), lambda n: n is not None and n > 0)
    assert cluster.stop(node.id) == 0
    cluster.start_node(node.id)
    again = cluster.connect([node.id])
    eventually(lambda: _try_count(again, 1, RESIDENT), lambda n: n == before)


def test_a_registered_tenants_quota_holds(cluster: LocalServers) -> None:
    admin = cluster.connect([cluster.nodes[0].id])
    admin.register_tenant(CAPPED, max_entities=2)
    client = cluster.connect([cluster.nodes[0].id])
    eventually(lambda: _try_count(client, 1, CAPPED), lambda n: n == 0)
    now = time.time()
    assert client.write_many("count", np.array([1, 2], dtype=np.uint64), ts=np.full(2, now), tenant=CAPPED) == 2
    with pytest.raises(tidaldb.QuotaExceeded) as e:
        client.write("count", 3, ts=now, tenant=CAPPED)
    assert type(e.value) is tidaldb.QuotaExceeded
    assert _try_count(client, 3, CAPPED) == 0, "the refused write wrote nothing"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"id": RESIDENT}, tidaldb.Conflict),
        ({"id": 0}, tidaldb.Conflict),
        ({"id": 50, "regions": ["atlantis"]}, tidaldb.NotFound),
        ({"id": 50, "regions": []}, tidaldb.InvalidArgument),
        ({"id": 50, "max_entities": 0}, tidaldb.InvalidArgument),
        ({"id": -1}, tidaldb.InvalidArgument),
    ],
)
def test_a_bad_registration_is_refused_and_commits_nothing(
    cluster: LocalServers, kwargs: dict[str, object], error: type[Exception]
) -> None:
    admin = cluster.connect([n.id for n in cluster.nodes])
    # Every registration above has committed by now (the fixture's module order), but the
    # node that answers `control()` may apply the last of them a heartbeat later, and the
    # restart above may still be committing: count once the count has stopped moving.
    eventually(lambda: (hosts_of(admin, RESIDENT), hosts_of(admin, CAPPED)), lambda h: None not in h)
    before = settled_commands(admin)
    with pytest.raises(error) as e:
        admin.register_tenant(**kwargs)  # type: ignore[arg-type]
    assert type(e.value) is error
    assert admin.control()["commands"] == before
    assert hosts_of(admin, 50) is None


def test_register_tenant_checks_its_argument_types(cluster: LocalServers) -> None:
    admin = cluster.connect([cluster.nodes[0].id])
    with pytest.raises(TypeError):
        admin.register_tenant("forty")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        admin.register_tenant(60, regions=[1])  # type: ignore[list-item]


def _try_count(client: tidaldb.Client, item: int, tenant: int) -> int | None:
    """The count, or None while the node does not host the tenant yet."""
    try:
        return count(client, item, tenant)
    except tidaldb.NotFound:
        return None
