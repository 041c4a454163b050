"""Admitting genuine backups taken before a key was configured (``verify --sign-legacy``).

With a key, a backup without an authentication tag is refused (dagvault.authtag): a
forger can delete a tag. The operator who knows a backup is genuine (it predates the
key) admits it once: the backup and every untagged link of its chain are verified
without the key (checksums, chain, integrity, row counts) and then tagged. Signing is a
statement by the operator, not a proof: only sign backups you trust.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dagvault import authtag, lock
from dagvault.chain import resolve_chain
from dagvault.errors import VerificationError
from dagvault.meta import FORMAT_VERSION, write_meta
from dagvault.verify import verify_file


def sign_legacy(backup: Path, key: bytes) -> list[Path]:
    """Tag ``backup`` and each untagged link of its chain after a full verify; return the
    backups signed. A link tagged under another key or with a wrong tag is refused."""
    with lock.hold(backup.parent, "verify --sign-legacy", shared=True):
        report = verify_file(backup)
        if not report.ok or report.info is None:
            raise VerificationError(
                f"Backup {backup} failed verification; not signing it: "
                + "; ".join(report.problems),
                "Only an intact backup can be admitted; pick another (`dagvault list`).",
                problems=report.problems,
            )
        chain = resolve_chain(backup, report.info)
        tagged = [link for link in chain if link.info.auth_tag is not None]
        problems = authtag.chain_problems(tagged, key)
        if problems:
            raise VerificationError(
                f"Backup {backup} has links tagged, but not validly under this key: "
                + "; ".join(problems),
                "Do not restore it; use the key it was written with, or another backup.",
                problems=problems,
            )
        signed = []
        for link in chain:
            if link.info.auth_tag is None:
                info = replace(link.info, format_version=FORMAT_VERSION)
                write_meta(link.path, authtag.sign(info, key))
                signed.append(link.path)
    return signed
