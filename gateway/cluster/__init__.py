"""Cluster mode (opt-in, ``pip install -e '.[cluster]'``): the venue's command stream is a
replicated NATS JetStream stream, and engine replicas consume it (``docs/cluster.md``).

* ``nodes``: a local NATS cluster with JetStream, for tests and ``alatau cluster up``;
* ``log``: the command log and the report stream, and their message formats;
* ``replica``: an engine replica process, leader or standby by a lease.
"""
