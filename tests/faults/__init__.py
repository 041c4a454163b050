"""The fault suite (see docs/reliability.md)."""
