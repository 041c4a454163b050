"""tests/_order.py: the longest files first, each file's tests together and in their order."""

from __future__ import annotations

from dataclasses import dataclass

from _order import SECONDS, pytest_collection_modifyitems
from conftest import PROJECT


@dataclass
class Item:
    nodeid: str


def test_long_files_go_first_and_files_stay_whole_and_in_order() -> None:
    longest, second = sorted(SECONDS, key=SECONDS.__getitem__, reverse=True)[:2]
    ids = [
        "tests/unit/test_a.py::test_1",
        f"{second}::test_x",
        "tests/unit/test_a.py::test_2[p]",
        f"{longest}::test_y",
        "tests/unit/test_b.py::test_1",
        f"{second}::test_w",
        f"{longest}::Class::test_z",
    ]
    items = [Item(nodeid) for nodeid in ids]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        f"{longest}::test_y",
        f"{longest}::Class::test_z",
        f"{second}::test_x",
        f"{second}::test_w",
        "tests/unit/test_a.py::test_1",
        "tests/unit/test_a.py::test_2[p]",
        "tests/unit/test_b.py::test_1",
    ]


def test_every_listed_file_exists() -> None:
    assert [name for name in SECONDS if not (PROJECT / name).is_file()] == []
