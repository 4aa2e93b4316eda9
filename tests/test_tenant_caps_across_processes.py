"""A tenant's ``max_entities`` holds across three real server processes written at once:
each node admits only within the rights it holds, borrows more from a peer when it runs
short, and after convergence no node holds more than the cap. The oracle is the set of
writes the servers acknowledged: every one is on every node, and nothing else is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import tidaldb
from server_support import SIGNALS, eventually
from tidaldb.servers import LocalServers

CAP = 30
CAPPED = 21
ATTEMPTS = 25  # distinct entities each node tries: 75 in all, against a cap of 30


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with LocalServers(3, signals=SIGNALS, tenants=[{"id": CAPPED, "max_entities": CAP}]) as s:
        yield s


def write_until_refused_for_good(client: tidaldb.Client, entities: list[int], accepted: list[int]) -> None:
    """Writes each entity once; a refusal with a retry hint (rights may be on their way)
    is retried a few times after the hint, one without means the cap is spent for this
    node. The quota's fields travel with the refusal from the server."""
    now = time.time()
    for entity in entities:
        for _ in range(5):
            try:
                client.write("view", entity, ts=now, tenant=CAPPED)
                accepted.append(entity)
                break
            except tidaldb.QuotaExceeded as e:
                assert type(e) is tidaldb.QuotaExceeded and e.quota == "entities" and e.limit == CAP
                if e.retry_after is None:
                    return
                time.sleep(min(e.retry_after, 0.05))


def held(client: tidaldb.Client, entities: list[int]) -> set[int]:
    scores = client.scores("view", np.array(entities, dtype=np.uint64), tenant=CAPPED)
    return {e for e, s in zip(entities, scores.tolist()) if s > 0}


def test_the_entity_cap_holds_across_processes_written_at_once(cluster: LocalServers) -> None:
    ids = [n.id for n in cluster.nodes]
    attempts = {i: [i * 1000 + k for k in range(ATTEMPTS)] for i in ids}
    accepted: dict[int, list[int]] = {i: [] for i in ids}
    writers = [
        threading.Thread(target=write_until_refused_for_good, args=(cluster.connect([i]), attempts[i], accepted[i]))
        for i in ids
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    acknowledged = {e for i in ids for e in accepted[i]}
    everything = [e for i in ids for e in attempts[i]]
    assert len(acknowledged) <= CAP, f"{len(acknowledged)} entities acknowledged against a cap of {CAP}"
    assert len(acknowledged) >= CAP - 3, "the cap is used, not left idle while rights sit elsewhere"
    assert all(accepted[i] for i in ids), "every node admitted some, with rights borrowed from the home"
    for i in ids:
        client = cluster.connect([i])
        got = eventually(lambda: held(client, everything), lambda h: h == acknowledged)
        assert len(got) <= CAP
