"""Province–city federation and the node's event stream (省市一体化, 省建市用).

- ``relay``: every committed change event of the outbox published to NATS JetStream.
- ``events``: the in-process API for application events across worker processes and nodes.
- ``uplink`` / ``ingest`` / ``downlink``: city nodes push their changes to the province, which
  stores them under the city's tenant; the province distributes registry, catalog, terminology and
  forms down.
- ``subscriptions``: FHIR topic-based Subscriptions (R4 Subscriptions Backport IG).

See docs/federation.md.
"""
