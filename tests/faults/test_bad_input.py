"""Bad input to every CLI command, flag, config value and environment variable (Hypothesis):
a clear ``Error: …`` / ``Try: …``, a documented exit code, never a traceback.

The CLI runs in this process (``dagvault_cli.main.main``) so that Hypothesis can try
hundreds of inputs; every input here is refused before a flow would start. Whether a
generated config or environment value is bad is decided by ``load_settings`` itself;
values it accepts are discarded (the property is about how the CLI reports a refusal).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from _helpers import cli_subcommands, run_main
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dagvault.config import _SPECS, CONFIG_ENV, load_settings
from dagvault.errors import EXIT_CODES, ConfigError
from dagvault_cli.main import build_parser
from faults._harness import STRESS, Figures

EXAMPLES = 400 if STRESS else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COMMANDS = sorted(cli_subcommands())
# Flags whose value argparse checks, and the commands that have them.
TYPED_FLAGS = {
    "--limit": ["list"],
    "--keep": ["cleanup"],
    "--keep-last": ["prune"],
    "--keep-hourly": ["prune"],
    "--keep-daily": ["prune"],
    "--keep-weekly": ["prune"],
    "--keep-monthly": ["prune"],
    "--interval-hours": ["schedule"],
    "--type": ["backup"],
    "--format": ["export"],
    "--transactions": ["sample-ledger"],
    "--nodes": ["sample-ledger"],
    "--seed": ["sample-ledger"],
    "--port": ["api"],
    "--preset": ["serve-deployments"],
    "--task-runner": ["fleet-backup"],
    "--api-port": ["up"],
    "--prefect-port": ["up"],
}
# Commands that resolve their settings before anything else, with their required arguments.
SETTINGS_FIRST = {
    "backup": [],
    "verify": ["--all"],
    "list": [],
    "cleanup": [],
    "prune": [],
    "schedule": [],
    "health": [],  # settings only, no flow run
    "restore": ["missing.db"],
    "drill": [],  # settings first, before its flow run
    "report": [],  # settings first, before it reads the journal
    "export": [],
    "import-sql": ["missing.sql"],
    "replicate": [],
    "decrypt": ["missing.enc", "--out", "plain.bin"],
    "api": [],  # serve() resolves the settings before it binds a port
    "up": [],  # before it creates its state directory or starts anything
    "watch": [],  # before it opens the ledger or reaches for Prefect
}
ENV_VARS = sorted(spec.env for spec in _SPECS.values() if spec.env)
CONFIG_KEYS = sorted(spec.file_key for spec in _SPECS.values())

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Exit code and stderr of ``dagvault ARGV``; an exception escaping main() fails."""
    code, _, stderr = run_main(argv, cwd)
    return code, stderr


def assert_refused(code: int, stderr: str, expected: set[int], context: object) -> None:
    assert code in expected, (context, code, stderr)
    assert code in EXIT_CODES
    assert "Traceback" not in stderr, (context, stderr)
    lines = stderr.strip().splitlines()
    assert lines and lines[0].startswith("Error: "), (context, stderr)
    assert any(line.startswith("Try: ") for line in lines), (context, stderr)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def flag_argv(flag: str, value: str) -> list[str]:
    """A command line that is valid except, perhaps, for ``flag``'s ``value``."""
    command = TYPED_FLAGS[flag][0]
    argv = [command, f"{flag}={value}"]
    if command == "sample-ledger":
        argv += ["x.db"] + (["--transactions", "1"] if flag != "--transactions" else [])
    return argv


def is_valid(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except (ConfigError, SystemExit):
        return False
    return True


@FUZZ
@given(flag=st.sampled_from(sorted(TYPED_FLAGS)), value=words)
def test_bad_flag_values(tmp_path: Path, flag: str, value: str) -> None:
    argv = flag_argv(flag, value)
    assume(not is_valid(argv))
    code, stderr = run_cli(argv, tmp_path)
    assert_refused(code, stderr, {2}, argv)
    assert not (tmp_path / "x.db").exists()


@FUZZ
@given(
    command=st.sampled_from(COMMANDS),
    junk=st.lists(words, max_size=4),
    unknown=st.from_regex(r"--no-such-[a-z]{1,8}", fullmatch=True),
    position=st.integers(min_value=0, max_value=4),
)
def test_unknown_flags_and_stray_arguments(
    tmp_path: Path, command: str, junk: list[str], unknown: str, position: int
) -> None:
    assume(not any(word in ("-h", "--help") or word.startswith("--h") for word in junk))
    argv = [command, *junk]
    argv.insert(1 + min(position, len(junk)), unknown)
    code, stderr = run_cli(argv, tmp_path)
    assert_refused(code, stderr, {2}, argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], argv  # nothing was created


@FUZZ
@given(
    command=st.sampled_from(sorted(SETTINGS_FIRST)),
    key=st.sampled_from(CONFIG_KEYS),
    value=json_values,
    raw=st.one_of(st.none(), st.binary(max_size=40), st.just(b"9" * 5000)),
)
def test_bad_config_files(
    tmp_path: Path, command: str, key: tuple[str, str], value: object, raw: bytes | None
) -> None:
    config = tmp_path / "config.json"
    if raw is None:
        config.write_text(json.dumps({key[0]: {key[1]: value}}))
    else:
        config.write_bytes(raw)
    try:
        load_settings({}, config_file=config)  # (an environment variable may take precedence)
    except ConfigError:
        pass
    else:
        assume(False)  # a valid config: not this test's subject
    argv = [command, *SETTINGS_FIRST[command], "--config", str(config)]
    code, stderr = run_cli(argv, tmp_path)
    assert_refused(code, stderr, {2}, (argv, config.read_bytes()[:200]))


@FUZZ
@given(
    command=st.sampled_from(sorted(SETTINGS_FIRST)),
    name=st.sampled_from([*ENV_VARS, CONFIG_ENV]),
    value=words.filter(lambda v: "\x00" not in v),
)
def test_bad_environment_variables(tmp_path: Path, command: str, name: str, value: str) -> None:
    try:
        load_settings({}, environ={**os.environ, name: value})
    except ConfigError:
        pass
    else:
        assume(False)
    argv = [command, *SETTINGS_FIRST[command]]
    with environment({name: value}):
        code, stderr = run_cli(argv, tmp_path)
    assert_refused(code, stderr, {2}, (argv, name, value))


PATH_CASES = {
    "backup": (["backup", "--db", "{missing}"], 3),
    "backup --name": (["backup", "--db", "{ledger}", "--name", "{word}"], 2),
    "verify": (["verify", "{missing}"], 3),
    "verify both": (["verify", "{missing}", "--all"], 2),
    "restore": (["restore", "{missing}"], 3),
    "export": (["export", "--db", "{missing}"], 3),
    "export --from": (["export", "--from", "{missing}"], 3),
    "import-sql": (["import-sql", "{missing}"], 3),
    "schedule": (["schedule", "--db", "{missing}", "--run-if-due"], 3),
    "watch": (["watch", "--db", "{missing}"], 3),
    "sample-ledger into a directory": (["sample-ledger", "{dir}", "--transactions", "1"], 2),
    "keygen over an existing path": (["keygen", "{dir}"], 2),
    "decrypt over an existing path": (["decrypt", "{missing}", "--out", "{dir}"], 2),
    "status of a state directory that is a file": (["status", "--state-dir", "{file}"], 2),
    "down of a state directory that is a file": (["down", "--state-dir", "{file}"], 2),
    "sample-ledger --append to nothing": (
        ["sample-ledger", "{missing}", "--transactions", "1", "--append"],
        2,
    ),
}


@FUZZ
@given(case=st.sampled_from(sorted(PATH_CASES)), word=words)
def test_bad_paths_and_names(tmp_path: Path, case: str, word: str) -> None:
    template, expected = PATH_CASES[case]
    ledger = tmp_path / "ledger.db"
    if case == "backup --name":
        # Letters and digits of any script are a valid name ("ª", "knoten-ü"): only words
        # with a character no name may hold, or a leading '.', '_' or '-'.
        assume(not word or word[0] in "._-" or any(not (c.isalnum() or c in "._-") for c in word))
        ledger.write_bytes(b"")  # exists; the name is what is wrong
    (tmp_path / "a-dir").mkdir(exist_ok=True)
    (tmp_path / "a-file").write_text("not a directory")
    names = {
        "file": str(tmp_path / "a-file"),
        "missing": str(tmp_path / f"missing-{abs(hash(word))}.db"),
        "ledger": str(ledger),
        "dir": str(tmp_path / "a-dir"),
        "word": word,
    }
    argv = [part.format(**names) for part in template]
    code, stderr = run_cli(argv, tmp_path)
    assert_refused(code, stderr, {expected}, argv)


def test_every_command_is_covered(figures: Figures) -> None:
    fuzzed = set(SETTINGS_FIRST) | {c for cmds in TYPED_FLAGS.values() for c in cmds}
    fuzzed |= {argv[0] for argv, _ in PATH_CASES.values()}
    assert fuzzed == set(COMMANDS)
    figures.add(
        "Bad input",
        commands=len(COMMANDS),
        flags_with_checked_values=len(TYPED_FLAGS),
        config_keys=len(CONFIG_KEYS),
        environment_variables=len(ENV_VARS) + 1,
        examples_per_property=EXAMPLES,
        tracebacks=0,
    )
