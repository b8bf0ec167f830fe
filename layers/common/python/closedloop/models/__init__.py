"""Pydantic models: requests and responses of the API, and the entities the store returns."""
