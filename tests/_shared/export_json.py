"""Shared by the unit and the integration half of test_export_json.py."""

from __future__ import annotations

JSON_FORMATS = ("json", "jsonl")
