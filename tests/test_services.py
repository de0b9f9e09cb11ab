"""Each service of the session stack answers its real protocol."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
import uuid

import orjson
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter
from quixstreams import Application

from plantwatch import warehouse
from plantwatch.metrics import serve_metrics
from plantwatch.settings import Settings


def test_quixstreams_round_trip_in_a_consumer_group(isolated: Settings) -> None:
    kafka = isolated.kafka
    sent = [{"machine_id": f"M{i % 3}", "n": i} for i in range(50)]
    producer_app = Application(broker_address=kafka.bootstrap_servers)
    topic = producer_app.topic(kafka.readings_topic, value_serializer="json")
    with producer_app.get_producer() as producer:
        for row in sent:
            msg = topic.serialize(key=row["machine_id"], value=row)
            producer.produce(topic=topic.name, key=msg.key, value=msg.value)

    group = f"test-group-{uuid.uuid4().hex[:8]}"
    consumer_app = Application(
        broker_address=kafka.bootstrap_servers,
        consumer_group=group,
        auto_offset_reset="earliest",
        consumer_extra_config={"session.timeout.ms": 6000},
    )
    received: list[dict] = []
    sdf = consumer_app.dataframe(consumer_app.topic(kafka.readings_topic, value_deserializer="json"))
    sdf.update(received.append)
    consumer_app.run(count=len(sent), timeout=30)

    assert sorted(r["n"] for r in received) == list(range(50))
    admin = AdminClient(kafka.client_config())
    [offsets] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    assert sum(tp.offset for tp in offsets.result().topic_partitions if tp.offset > 0) == len(sent)


def test_clickhouse_answers_over_http(isolated: Settings) -> None:
    ch = warehouse.client(isolated)
    major = int(ch.command("SELECT version()").split(".")[0])
    assert major >= 26
    tables = {row[0] for row in ch.query("SHOW TABLES").result_rows}
    assert {isolated.clickhouse.raw_readings_table, isolated.clickhouse.readings_view} <= tables


def test_prometheus_scrapes_a_client_endpoint(settings: Settings, stack) -> None:
    name = f"plantwatch_test_{uuid.uuid4().hex[:8]}_total"
    counter = Counter(name.removesuffix("_total"), "a counter only this test increments")
    counter.inc(7)
    serve_metrics(settings, job="pytest")
    query = urllib.parse.urlencode({"query": name})
    deadline = time.monotonic() + 60
    value = None
    while value is None and time.monotonic() < deadline:
        with urllib.request.urlopen(f"{settings.prometheus.url}/api/v1/query?{query}", timeout=5) as resp:
            result = orjson.loads(resp.read())["data"]["result"]
        value = float(result[0]["value"][1]) if result else None
        time.sleep(1)
    assert value == 7.0
