"""The local CRM API server of the CRM tests, for the write-back tests too."""

from tests.unit.crm.conftest import crm_api

__all__ = ["crm_api"]
