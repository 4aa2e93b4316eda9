"""Three tidaldb servers on this machine, with mutual TLS: write through the Python client,
kill a node, keep serving from the others, restart it, and watch it catch up.

Run it with ``make cluster-demo`` (or ``python examples/cluster/demo.py`` once the package
is installed). Everything lives in a temporary directory that is removed at the end; pass a
directory as the first argument to keep the configs, certificates, data and logs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from tidaldb.servers import LocalServers

SIGNALS = [{"name": "view", "kind": "item", "half_life": "1h", "windows": ["1h", "24h"]}]
ITEMS = np.arange(1, 1001, dtype=np.uint64)


def counts(servers: LocalServers) -> dict[int, int | str]:
    """Events each node holds for item 1, or why it cannot say."""
    out: dict[int, int | str] = {}
    for node in servers.nodes:
        if not node.is_running():
            out[node.id] = "down"
            continue
        out[node.id] = servers.connect([node.id]).window_count("view", 1, "24h")
    return out


def wait_until_equal(servers: LocalServers, expected: int, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while any(c != expected for c in counts(servers).values() if c != "down"):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"nodes did not converge: {counts(servers)}")
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else None
    with LocalServers(3, signals=SIGNALS, base_dir=base) as servers:
        print(f"3 nodes on 127.0.0.1 (test CA and configs in {servers.base}):")
        for node in servers.nodes:
            print(f"  node {node.id} {node.region:9} client {node.client_addr}  pid {node.pid}")
        print(f"\nnode 1's config ({servers.node(1).config}):")
        print("  " + servers.node(1).config.read_text().replace("\n", "\n  ").rstrip())

        client = servers.connect(write_concern="majority")
        written = 0
        for _ in range(5):
            written += client.write_many("view", ITEMS)
        print(f"\nwrote {written:,} events through node {client.node}; every node holds them "
              f"after {wait_until_equal(servers, 5) * 1000:.0f} ms: {counts(servers)}")

        victim = 2
        servers.kill(victim)
        print(f"\nkilled node {victim} (SIGKILL)")
        time.sleep(0.5)  # past the peer timeout (300 ms), so the others count it unreachable
        for _ in range(5):
            written += client.write_many("view", ITEMS)
        survivor = servers.connect([3])
        score = survivor.score("view", 1)
        served = survivor.last_served
        print(f"the others keep serving: {counts(servers)}; node 3 scores item 1 at {score:.4f}")
        print(f"  and says its answer is degraded={served.degraded if served else '?'}, "
              f"unreachable={served.unreachable if served else '?'}")

        servers.start_node(victim)
        took = wait_until_equal(servers, 10)
        print(f"\nrestarted node {victim} from its data directory; caught up in {took * 1000:.0f} ms: "
              f"{counts(servers)}")
        now = time.time()
        scores = {n.id: servers.connect([n.id]).score("view", 1, at=now) for n in servers.nodes}
        print(f"scores of item 1 at one instant, bit for bit: {scores}")


if __name__ == "__main__":
    main()
