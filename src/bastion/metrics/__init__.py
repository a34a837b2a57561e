"""Prometheus metrics: what they are (:mod:`.registry`), how requests and dependencies
are counted (:mod:`.requests`, :mod:`.dependencies`, :mod:`.instrument`), and how
``bastion serve`` exports every worker's values as one (:mod:`.exporter`).

Off unless ``BASTION_METRICS_ADDRESS`` is set; then never on the API's port. This
package imports nothing itself, on purpose: prometheus-client picks its storage
(in-process, or the multiprocess directory) when it is first imported, so
``bastion serve`` must prepare that directory before anything imports it.
"""
