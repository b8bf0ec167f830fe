"""CRM write-back: each lead's source fields onto its CRM records (docs/crm-writeback.md).

``fields`` computes the values (pure), ``queue`` carries "lead changed" messages (and re-queues the
rate-limited), ``service`` decides what to write, ``throttle`` holds a rate-limited CRM back, ``budget``
reads the limits a CRM announces in its answers, and ``hubspot`` / ``salesforce`` / ``pipedrive`` call
each CRM's API. Modules are imported where used: the collect function imports the store, which must
stay light.
"""
