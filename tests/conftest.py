"""Fixtures: the real local stack, started once for the run (reused when already up), and per-test isolation.

Every test that touches data gets its own Kafka topics and ClickHouse database through ``isolated``, so tests
never see each other's rows or messages, and the run can be split over pytest-xdist workers (`make test`: two,
whole modules each): the first worker that needs the stack starts it under a file lock, the others find it up,
and the controlling process stops what the run started once every worker is done.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from filelock import FileLock

from plantwatch import warehouse
from plantwatch.access import pinned
from plantwatch.settings import Settings, get_settings
from plantwatch.stack import Stack, running_stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


WAS_UP = pytest.StashKey[set[str]]()  # the services that were up when the run began

# Modules that watch what the shared stack's Prometheus and Alertmanager show as a whole (every alert firing, the
# lag of the whole machine): one worker runs them one after another, never beside each other.
SHARED_MONITORING = {"test_demo", "test_quality", "test_services", "test_soak"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (`make test`) each module runs on one worker (its module fixtures, such as the drills' and
    the cluster's stacks on fixed ports, start once), and SHARED_MONITORING's modules on the same one."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared-monitoring" if Path(module).stem in SHARED_MONITORING else module

    return ModuleGroups(config, log)


def controlling(config: pytest.Config) -> bool:
    """This process runs the session (not an xdist worker): it sees the run begin and end."""
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if controlling(session.config):
        session.config.stash[WAS_UP] = {s.name for s in Stack(get_settings()).services if s.pid() is not None}


def pytest_sessionfinish(session: pytest.Session) -> None:
    """What this run started is stopped at the end under CI or `make test` (PLANTWATCH_STOP_STACK=1); a developer's
    plain `pytest` leaves it up for the next run."""
    if not controlling(session.config) or not (os.environ.get("CI") or os.environ.get("PLANTWATCH_STOP_STACK")):
        return
    was_up = session.config.stash.get(WAS_UP, set())
    started = [s.name for s in Stack(get_settings()).services if s.name not in was_up and s.pid() is not None]
    if started:
        Stack(get_settings(), started).down()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The local stack, started when it is not up (by one worker at a time: the others wait for it)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(settings.state_dir / "test-stack.lock"), running_stack(settings, stop=False) as stack:
        pass
    # The admin's and the roles' credentials, as the stack's state folder gives them, written into the session's
    # settings: a copy with a state folder of its own (a test's archive) or a child process connects the same way.
    settings.clickhouse = pinned(settings).clickhouse
    yield stack


@pytest.fixture(scope="session")
def kafka_admin(stack: Stack, settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.client_config())


def create_topics(admin: AdminClient, names: list[str], partitions: int) -> None:
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(timeout=30)


@pytest.fixture
def isolated(stack: Stack, settings: Settings, kafka_admin: AdminClient) -> Iterator[Settings]:
    """Settings whose topics and database belong to this test alone (created, migrated, dropped after)."""
    mine = settings.scoped(f"test.{uuid.uuid4().hex[:10]}")
    kafka, clickhouse = mine.kafka, mine.clickhouse
    create_topics(kafka_admin, [kafka.readings_topic, kafka.dead_letter_topic], settings.kafka.partitions)
    warehouse.migrate(mine)
    yield mine
    kafka_admin.delete_topics([kafka.readings_topic, kafka.dead_letter_topic])
    warehouse.client(mine, database="default").command(f"DROP DATABASE IF EXISTS {clickhouse.database}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The drills' counts (produced, landed, duplicates, dead-lettered) at the end of every run, CI's included."""
    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in report.user_properties
        if name.startswith("drill_")
    ]
    if lines:
        terminalreporter.section("drill counts")
        for line in lines:
            terminalreporter.write_line(line)
