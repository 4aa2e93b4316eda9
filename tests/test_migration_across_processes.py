"""A tenant migrates from one server process to another while a concurrent reader queries
it through a client that knows both: none of its queries fails, the target ends up with
every acknowledged write exactly once (scores equal to the counts the servers acknowledged),
and the source keeps nothing. Bad migrations are refused and commit nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from server_support import Reader, control_servers, eventually, hosts_of, settled_commands
from tidaldb.servers import LocalServers

MOVING, STAYING = 60, 61


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with control_servers() as s:
        yield s


def migration_state(client: tidaldb.Client, tenant: int) -> str | None:
    for m in client.control()["migrations"]:
        if m["tenant"] == tenant:
            return str(m["state"])
    return None


def test_a_tenant_moves_to_another_process_and_no_read_fails(cluster: LocalServers) -> None:
    source, target, _ = cluster.nodes
    admin = cluster.connect([n.id for n in cluster.nodes])
    admin.register_tenant(MOVING, regions=[source.region], max_entities=1_000)
    writer = cluster.connect([source.id])
    items = np.arange(1, 201, dtype=np.uint64)
    acknowledged = np.zeros(len(items))
    rng = np.random.default_rng(7)

    def write_some(n: int) -> None:
        picked = rng.integers(0, len(items), size=n)
        assert writer.write_many("count", items[picked], ts=np.full(n, time.time()), tenant=MOVING) == n
        np.add.at(acknowledged, picked, 1.0)

    eventually(lambda: _hosted(writer, MOVING), bool)
    for _ in range(20):
        write_some(500)
    both = cluster.connect([source.id, target.id], timeout=10.0)
    reader = Reader(lambda: both.scores("count", items, tenant=MOVING))
    reader.start()
    try:
        admin.migrate_tenant(MOVING, to_region=target.region)
        # Writes go on at the source until it stops serving the tenant.
        while migration_state(admin, MOVING) in ("idle", "target_created", "dual_write"):
            try:
                write_some(100)
            except tidaldb.Unavailable:
                break  # the source has handed over
        eventually(lambda: migration_state(admin, MOVING), lambda s: s == "complete", timeout=60.0)
    finally:
        reader.done.set()
        reader.join(timeout=30)
    assert reader.failures == [], f"{len(reader.failures)} of {reader.ok + len(reader.failures)} reads failed"
    assert reader.ok > 10, "the reader ran throughout"
    on_target = cluster.connect([target.id]).scores("count", items, tenant=MOVING)
    np.testing.assert_array_equal(on_target, acknowledged)
    assert hosts_of(admin, MOVING) == [target.id]
    eventually(lambda: (source.dir / "data" / f"tenant-{MOVING}").exists(), lambda e: not e)
    with pytest.raises(tidaldb.Unavailable):
        cluster.connect([source.id]).scores("count", items, tenant=MOVING)


def test_a_bad_migration_is_refused_and_commits_nothing(cluster: LocalServers) -> None:
    admin = cluster.connect([n.id for n in cluster.nodes])
    admin.register_tenant(STAYING, regions=[cluster.nodes[2].region])
    # The node that answers `control()` may apply the registration a heartbeat after the
    # leader acknowledged it, and the migration before this test may still commit its last
    # step; counting before then would count them as later commands.
    eventually(lambda: hosts_of(admin, STAYING), lambda hosts: hosts is not None)
    before = settled_commands(admin)
    for kwargs, error in [
        ({"id": 99, "to_region": cluster.nodes[0].region}, tidaldb.NotFound),
        ({"id": STAYING, "to_region": "atlantis"}, tidaldb.InvalidArgument),
        ({"id": STAYING, "to_region": cluster.nodes[2].region}, tidaldb.InvalidArgument),
        ({"id": 0, "to_region": cluster.nodes[0].region}, tidaldb.InvalidArgument),
    ]:
        with pytest.raises(error) as e:
            admin.migrate_tenant(**kwargs)  # type: ignore[arg-type]
        assert type(e.value) is error, kwargs
    assert admin.control()["commands"] == before
    assert migration_state(admin, STAYING) is None


def _hosted(client: tidaldb.Client, tenant: int) -> bool:
    try:
        client.scores("count", np.array([1], dtype=np.uint64), tenant=tenant)
        return True
    except tidaldb.NotFound:
        return False
