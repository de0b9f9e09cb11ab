"""Fixtures: the real local stack, started once per session (reused when already up), and per-test isolation.

Every test that touches data gets its own Kafka topics and ClickHouse database through ``isolated``, so tests
never see each other's rows or messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import warehouse
from plantwatch.access import pinned
from plantwatch.settings import Settings, get_settings
from plantwatch.stack import Stack, running_stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The local stack, started when it is not up. What this session started is stopped at the end under CI or
    `make test` (PLANTWATCH_STOP_STACK=1); a developer's plain `pytest` leaves it up for the next run."""
    with running_stack(settings, stop=bool(os.environ.get("CI") or os.environ.get("PLANTWATCH_STOP_STACK"))) as stack:
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
