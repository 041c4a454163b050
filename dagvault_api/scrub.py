"""What an error message may show of the server's filesystem."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class Scrubber:
    """Replaces absolute spellings of the configured paths by their configured form, so an
    error message never shows more of the server's filesystem than its settings do."""

    def __init__(self, base: Path, configured: Iterable[Path]) -> None:
        pairs: dict[str, str] = {}
        for path in configured:
            for spelling in {str(base / path), str((base / path).resolve())}:
                if spelling != str(path):
                    pairs[spelling] = str(path)
        pairs[str(base) + "/"] = ""
        # Longest first: /srv/node/backups before /srv/node/.
        self._pairs = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def __call__(self, text: str) -> str:
        for absolute, shown in self._pairs:
            text = text.replace(absolute, shown)
        return text
