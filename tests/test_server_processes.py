"""The ``tidaldb`` command as a user runs it: installed with the package, stopped gracefully
by SIGTERM, restarted from its data directory, monitored over HTTP, and failed over from by
a client when a node dies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

import tidaldb

from conftest import T0
from server_support import eventually, servers


def test_the_package_installs_the_command() -> None:
    # The script sits beside the interpreter in the environment the package went into.
    script = Path(sys.executable).with_name("tidaldb")
    assert script.is_file(), f"no tidaldb script in {script.parent}"
    for argv in ([sys.executable, "-m", "tidaldb", "--help"], [str(script), "--help"]):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "serve" in out.stdout and "cert" in out.stdout


def test_sigterm_stops_gracefully_and_a_restart_keeps_every_acknowledged_write() -> None:
    with servers(2, durability="batched") as s:
        client = s.connect([1])
        acked = sum(
            client.write_many("count", np.full(100, 9, dtype=np.uint64), ts=np.full(100, time.time()))
            for _ in range(20)
        )
        assert s.stop(1) == 0, s.node(1).log_text()
        assert "shutting down" in s.node(1).log_text()
        s.start_node(1)
        assert s.connect([1]).window_count("count", 9, "30d") == acked
        other = s.connect([2])
        eventually(lambda: other.window_count("count", 9, "30d"), lambda n: n == acked)


def test_monitoring_serves_health_json_and_prometheus_metrics() -> None:
    with servers(2) as s:
        s.connect([1]).write_many("count", np.arange(50, dtype=np.uint64), ts=np.full(50, T0))
        base = f"http://{s.node(1).http_addr}"
        health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=5).read())
        assert {r["node"] for r in health["replicas"]} == {1, 2}
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        samples = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['tidaldb_client_events_written_total{node="1"}'] == 50
        assert samples['tidaldb_events_applied_total{node="1",tenant="0"}'] == 50
        assert 'tidaldb_replication_lag_events{node="1",tenant="0",peer="2"}' in samples
        assert 'tidaldb_peer_queue_dropped_total{node="1",peer="2"}' in samples
        assert samples['tidaldb_wal_fsync_seconds_count{node="1"}'] > 0


def test_a_client_fails_over_and_keeps_every_acknowledged_write() -> None:
    with servers(3) as s:
        client = s.connect(write_concern=1)
        first = client.node
        acked = unknown = 0
        for batch in range(60):
            if batch == 20:
                s.kill(first)
            try:
                acked += client.write_many("count", np.full(10, 5, dtype=np.uint64), ts=np.full(10, time.time()))
            except tidaldb.OutcomeUnknown:  # in flight when its node died: applied or not
                unknown += 10
        assert client.node != first
        for node in s.nodes:
            if node.id != first:
                reader = s.connect([node.id])
                eventually(
                    lambda: reader.window_count("count", 5, "30d"), lambda n: acked <= n <= acked + unknown
                )
