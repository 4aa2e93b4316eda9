"""Changing the control plane's voters from Python, on three server processes: a removed
voter stops voting and is listed again once added back; bad changes raise the exact class
and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tidaldb
from server_support import control_servers, eventually
from tidaldb.servers import LocalServers


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalServers]:
    with control_servers() as s:
        yield s


def test_a_voter_removed_and_added_back(cluster: LocalServers) -> None:
    ids = [n.id for n in cluster.nodes]
    admin = cluster.connect(ids)
    admin.remove_voter(ids[2])
    assert admin.control()["voters"] == ids[:2]
    admin.drain(cluster.nodes[0].region)  # two voters of two still commit
    admin.rejoin(cluster.nodes[0].region)
    admin.add_voter(ids[2])
    for i in ids:
        eventually(lambda: cluster.connect([i]).control()["voters"], lambda v: v == ids)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.remove_voter(99), tidaldb.InvalidArgument),
        (lambda c: c.add_voter(1), tidaldb.Conflict),
        (lambda c: c.remove_voter(-1), tidaldb.InvalidArgument),
        (lambda c: c.remove_voter(True), TypeError),
    ],
)
def test_a_bad_change_of_voters_is_refused(
    cluster: LocalServers, call: object, error: type[Exception]
) -> None:
    admin = cluster.connect([n.id for n in cluster.nodes])
    before = admin.control()["voters"]
    with pytest.raises(error) as e:
        call(admin)  # type: ignore[operator]
    assert type(e.value) is error
    assert admin.control()["voters"] == before
