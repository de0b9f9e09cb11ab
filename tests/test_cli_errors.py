"""Every error a user can make on the command line or in the configuration is one line on stderr naming the option,
variable or file, exit 2, with no traceback unless `plantwatch --debug` (issue 17); replay refuses what it cannot
replay as it is before anything is sent; `plantwatch db migrate` creates the topics (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from plantwatch import warehouse
from plantwatch.producers.replay import replay_csv
from plantwatch.settings import PROJECT_ROOT, Settings, environment
from tests.fixtures.kafka_topic import read_topic

MACHINE = "L9-pump01"


def plantwatch(*args: str, cwd: Path = PROJECT_ROOT, **variables: str) -> subprocess.CompletedProcess[str]:
    """`plantwatch ARGS` in a subprocess; `variables` replace every PLANTWATCH_* of this process's environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLANTWATCH_")}
    return subprocess.run([sys.executable, "-m", "plantwatch.cli", *args], capture_output=True, text=True,
                          env={**env, **variables}, cwd=cwd, timeout=120, check=False)  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a command that failed as a user error."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("variables", "named", "says"),
    [
        ({"PLANTWATCH_KAFKA__PORT": "abc"}, "PLANTWATCH_KAFKA__PORT", "valid integer"),
        ({"PLANTWATCH_KAFKA__PORT": "70000"}, "PLANTWATCH_KAFKA__PORT", "65535"),
        ({"PLANTWATCH_INGEST__POLL_MESSAGES": "0"}, "PLANTWATCH_INGEST__POLL_MESSAGES", "greater than 0"),
        ({"PLANTWATCH_KAFKA__PORTT": "1"}, "PLANTWATCH_KAFKA__PORTT", "no such setting"),
        ({"PLANTWATCH_KAFKAA__PORT": "1"}, "PLANTWATCH_KAFKAA__PORT", "no such setting"),
        ({"PLANTWATCH_CONFIG": "/nonexistent/plantwatch.toml"}, "PLANTWATCH_CONFIG", "no such file"),
        ({"PLANTWATCH_CLICKHOUSE__DATABASE": "plant; DROP TABLE x"}, "PLANTWATCH_CLICKHOUSE__DATABASE", "pattern"),
        ({"PLANTWATCH_KAFKA__READINGS_TOPIC": "a topic"}, "PLANTWATCH_KAFKA__READINGS_TOPIC", "pattern"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(variables: dict[str, str], named: str, says: str) -> None:
    line = one_line(plantwatch("config", **variables))
    assert named in line and says in line


def test_transform_shard_without_a_per_shard_transform_is_one_line() -> None:
    line = one_line(plantwatch("transform", "--shard", "0"))
    assert "--shard" in line and "transform.per_shard" in line


def test_a_bad_config_file_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\nport = 1\n")
    assert "not valid TOML" in one_line(plantwatch("config", PLANTWATCH_CONFIG=str(broken)))
    typo = tmp_path / "typo.toml"
    typo.write_text('[kafka]\nprot = 19092\n[clickhouse]\ndatabase = "x-y"\n')
    line = one_line(plantwatch("config", PLANTWATCH_CONFIG=str(typo)))
    assert f"kafka.prot in {typo}: no such setting" in line and "clickhouse.database" in line


def test_debug_shows_the_traceback() -> None:
    result = plantwatch("--debug", "config", PLANTWATCH_KAFKA__PORT="abc")
    assert result.returncode != 0 and "Traceback" in result.stderr and "PLANTWATCH_KAFKA__PORT" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["produce", "--start", "notadate"], "--start"),
        (["produce", "--count", "-5"], "--count"),
        (["produce", "--rate", "-1"], "--rate"),
        (["produce", "--duration", "0"], "--duration"),
        (["produce", "--plant", "/etc/passwd"], "/etc/passwd: not a plant config"),
        (["produce", "--plant", "/nonexistent.yaml"], "/nonexistent.yaml"),
        (["stack", "logs", "kafka", "-n", "-5"], "'-n'"),
        (["replay", "/nonexistent.csv", "--machine", MACHINE], "/nonexistent.csv: no such file"),
        (["replay", "/tmp", "--machine", MACHINE], "/tmp: a folder"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(args: list[str], says: str, tmp_path: Path) -> None:
    assert says in one_line(plantwatch(*args, PLANTWATCH_STATE_DIR=str(tmp_path)))


def replay_cli(settings: Settings, tmp_path: Path, csv: Path) -> subprocess.CompletedProcess[str]:
    variables = environment(settings.model_copy(update={"state_dir": tmp_path / "state"}))
    return plantwatch("replay", str(csv), "--machine", MACHINE, "--no-archive", **variables)


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [("timestamp,temp,temp", "temp", "temp"), ("timestamp,temp (C),temp [F]", "temp (C)", "temp [F]")],
)
def test_two_columns_of_one_sensor_are_refused(isolated: Settings, tmp_path: Path, header: str, first: str,
                                               second: str) -> None:  # fmt: skip
    """Both went into one series (Celsius and Fahrenheit interleaved), rc 0."""
    csv = tmp_path / "export.csv"
    csv.write_text(f"{header}\n2026-11-30T08:00:00,70.1,158.2\n2026-11-30T08:00:01,70.2,158.4\n")
    line = one_line(replay_cli(isolated, tmp_path, csv))
    assert f"{first!r}" in line and f"{second!r}" in line
    assert read_topic(isolated, timeout=10) == []


def test_a_file_that_is_not_utf8_is_refused_before_anything_is_sent(isolated: Settings, tmp_path: Path) -> None:
    """One Latin-1 byte on line 2002 of 3001: the error had no line, and 1,932 rows had landed already."""
    rows = [f"2026-11-30T08:{n // 60 % 60:02d}:{n % 60:02d},{20 + n % 7}" for n in range(3000)]
    rows[2000] += " °C"  # the one character Latin-1 writes as a byte UTF-8 cannot read (0xb0)
    csv = tmp_path / "export.csv"
    csv.write_bytes(("timestamp,temp\n" + "\n".join(rows) + "\n").encode("latin-1"))
    line = one_line(replay_cli(isolated, tmp_path, csv))
    assert "line 2002" in line and "not UTF-8" in line and "nothing was replayed" in line
    assert read_topic(isolated, timeout=10) == []


def test_times_out_of_range_are_malformed_and_repeated_times_warn(isolated: Settings, tmp_path: Path) -> None:
    """Year 9999 and 1960 were reported as replayed, then dead-lettered by the ingest; three rows at one time
    landed as seq 0..2 without a word."""
    csv = tmp_path / "export.csv"
    csv.write_text("timestamp,temp\n2026-11-30T08:00:00,70.1\n9999-01-01T00:00:00,70.2\n1960-01-01T00:00:00,70.3\n"
                   "2026-11-30T08:00:01,70.4\n2026-11-30T08:00:01,70.5\n2026-11-30T08:00:01,70.6\n")  # fmt: skip
    settings = isolated.model_copy(update={"state_dir": tmp_path / "state"})
    report = replay_csv(settings, csv, MACHINE, archive=False)
    assert (report.rows, report.replayed) == (6, 4)
    assert [line for line, _ in report.malformed] == [3, 4]
    assert all("outside what a reading may carry" in why for _, why in report.malformed)
    assert report.repeated_times == 2
    assert len(read_topic(isolated)) == 4
    result = replay_cli(isolated, tmp_path, csv)
    assert result.returncode == 0, result.stderr
    assert "2 rows repeat an earlier row's time" in result.stderr and "line 3:" in result.stderr


def test_db_migrate_creates_the_topics(settings: Settings, stack: object) -> None:
    """On a fresh stack nothing made the topics, and the ingest died on TopicNotFoundError (issue 12)."""
    mine = settings.scoped(f"test.{uuid.uuid4().hex[:10]}")
    admin = AdminClient(settings.kafka.client_config())
    topics = [mine.kafka.readings_topic, mine.kafka.dead_letter_topic]
    try:
        first = plantwatch("db", "migrate", **environment(mine))
        assert first.returncode == 0, first.stderr
        assert f"created topics {', '.join(topics)}" in first.stderr
        metadata = admin.list_topics(timeout=10).topics
        assert all(len(metadata[t].partitions) == mine.kafka.partitions for t in topics)
        again = plantwatch("db", "migrate", **environment(mine))
        assert again.returncode == 0 and "topics present" in again.stderr
    finally:
        admin.delete_topics(topics)
        warehouse.client(mine, database="default").command(f"DROP DATABASE IF EXISTS {mine.clickhouse.database}")


def test_stack_up_creates_the_topics(settings: Settings, stack: object) -> None:
    """`plantwatch stack up kafka` on the running stack: nothing started (a no-op for what runs), the configured
    topics created."""
    mine = settings.scoped(f"test.{uuid.uuid4().hex[:10]}")
    topics = [mine.kafka.readings_topic, mine.kafka.dead_letter_topic]
    try:
        result = plantwatch("stack", "up", "kafka", **environment(mine))
        assert result.returncode == 0, result.stderr
        assert "already up" in result.stderr and f"created topics {', '.join(topics)}" in result.stderr
    finally:
        AdminClient(settings.kafka.client_config()).delete_topics(topics)
