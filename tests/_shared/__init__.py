"""What the unit and the integration half of a split test module share (one module per
split test module; tests/conftest.py registers the ones holding fixtures as plugins)."""
