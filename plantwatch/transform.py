"""`plantwatch transform`: run the dbt project (dbt_project/) against the warehouse named in the settings.

dbt gets every address and table name from the settings: the connection through the environment that
dbt_project/profiles.yml reads (DBT_PLANTWATCH_*), the table names and any threshold overrides through ``--vars``.
dbt runs in-process through its programmatic API (dbtRunner), so a loop (``--every``) pays dbt's start-up once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from plantwatch import warehouse
from plantwatch.access import credentials
from plantwatch.settings import MACHINE_SHARDING_KEY, Settings

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult


# What a per-shard transform runs on every shard; everything else runs once, against the configured database.
PER_SHARD_COMMANDS = frozenset({"build", "run", "seed", "test"})


class TransformError(RuntimeError):
    """dbt failed: a model, a test or the invocation itself."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    command: str
    seconds: float
    nodes: int
    failures: list[str]
    timings: dict[str, float]  # seconds per node


def dbt_vars(settings: Settings) -> dict[str, str | int | float]:
    """The dbt vars: table names from the settings, then the configured threshold overrides."""
    ch = settings.clickhouse
    return {
        "raw_readings_table": ch.raw_readings_table,
        "readings_view": ch.readings_view,
        "fault_labels_table": ch.fault_labels_table,
        "baselines_table": ch.baselines_table,
        "machine_config_table": ch.machine_config_table,
        "spec_limit_config_table": ch.spec_limit_config_table,
        "alert_events_table": ch.alert_events_table,
        **({"false_alarm_rate": settings.transform.false_alarm_rate} if settings.transform.false_alarm_rate else {}),
        **settings.transform.vars,
    }


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment profiles.yml reads; dbt connects as the transform user (plantwatch/sql/access.yaml)."""
    ch = settings.clickhouse
    user, password = credentials(settings, "transform")
    return {
        "DBT_PLANTWATCH_HOST": ch.host,
        "DBT_PLANTWATCH_PORT": str(ch.http_port),
        "DBT_PLANTWATCH_USER": user,
        "DBT_ENV_SECRET_PLANTWATCH_PASSWORD": password,
        "DBT_PLANTWATCH_DATABASE": ch.database,
        "DBT_PLANTWATCH_THREADS": str(settings.transform.threads),
        # ON CLUSTER DDL only where the engine replicates (the local cluster's refuses it: docs/scale-out.md)
        "DBT_PLANTWATCH_CLUSTER": (ch.cluster or "") if ch.replicated else "",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def target_dir(settings: Settings) -> Path:
    """dbt's artifacts, one folder per database and node (a per-shard transform's shards share the database name)
    so that parallel runs against different databases don't clash."""
    ch = settings.clickhouse
    return settings.state_dir / "dbt" / f"{ch.database}-{ch.http_port}"


def shard_settings(settings: Settings, shard: int) -> Settings:
    """What dbt gets for shard ``shard`` of a per-shard transform (transform.per_shard): the shard's node, the models
    in the shard database, and as sources the node's local tables of the tables sharded by machine (its machines'
    whole history) - but the spec limits, configuration every shard needs, through their Distributed table. The
    machines seed is cut to the shard's machines (dbt var shard_filter)."""
    ch = settings.clickhouse
    local = {field: f"{table}{ch.local_suffix}" for field, table in warehouse.machine_tables(settings).items()}
    shard_vars = {
        **local,
        "readings_view": f"{ch.readings_view}{ch.local_suffix}",
        "source_database": ch.database,
        "shard_filter": f"{MACHINE_SHARDING_KEY} % {ch.shards} = {shard}",
    }
    node = warehouse.node_settings(settings, shard)
    clickhouse = node.clickhouse.model_copy(update={"database": ch.shard_database})
    transform = settings.transform.model_copy(
        update={"per_shard": False, "shard": None, "vars": {**settings.transform.vars, **shard_vars}}
    )
    return node.model_copy(update={"clickhouse": clickhouse, "transform": transform})


class Transformer:
    """dbt for one warehouse (the settings' database), the project parsed once and reused for every invocation.

    Per shard (transform.per_shard): `build`, `run`, `seed` and `test` run on every shard in turn (shard_settings;
    only transform.shard's with one set: a process per shard),
    and after each shard's build its models are exposed on its node under the configured names (macro
    expose_shard_models: Distributed tables over the models, views over the seeds); what reads the models (the
    analyses, `run-operation`, `docs`) runs once against the configured database, through those."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._manifest: object | None = None
        self._refreshed_up_to: tuple[datetime, ...] | None = None  # the newest ingest time(s) the last refresh saw
        self._analyses: dict[str, dict[str, str]] = {}
        self._shards = {shard: Transformer(shard_settings(settings, shard)) for shard in transform_shards(settings)}

    def _invoke(self, args: list[str], *, expose: bool = True) -> RunSummary:
        if self._shards and args[0] in PER_SHARD_COMMANDS:
            return self._invoke_per_shard(args, expose=expose)
        began = time.monotonic()
        result = self._dbt(args)
        return _summary(args[0], result, time.monotonic() - began)

    def _invoke_per_shard(self, args: list[str], *, expose: bool) -> RunSummary:
        ch = self.settings.clickhouse
        creates = expose and args[0] != "test"  # a refresh or a test only reads and fills what exists
        summaries = []
        for shard, transformer in self._shards.items():
            try:
                if creates:  # dbt left it uncreated on the second node (seen): made here, on every node
                    warehouse.create_database(transformer.settings)
                summaries.append(transformer._invoke(args))
                if creates:
                    transformer.operation("expose_shard_models", {"database": ch.database, "cluster": ch.cluster})
            except TransformError as exc:
                raise TransformError(f"shard {shard}: {exc}") from exc
        timings: dict[str, float] = {}
        for summary in summaries:
            for name, seconds in summary.timings.items():
                timings[name] = timings.get(name, 0.0) + seconds
        return RunSummary(
            command=args[0],
            seconds=sum(summary.seconds for summary in summaries),
            nodes=max(summary.nodes for summary in summaries),
            failures=[failure for summary in summaries for failure in summary.failures],
            timings=timings,
        )

    def _dbt(self, args: list[str]) -> dbtRunnerResult:
        target = target_dir(self.settings)
        project = self.settings.transform.project_dir
        common = [
            "--project-dir", str(project),
            "--profiles-dir", str(project),
            "--target-path", str(target / "target"),
            "--log-path", str(target / "logs"),
            "--vars", json.dumps(dbt_vars(self.settings)),
        ]  # fmt: skip
        from dbt.cli.main import dbtRunner  # heavy (seconds to import): only when dbt actually runs

        with _environment(dbt_env(self.settings)):
            if self._manifest is None:
                parsed = dbtRunner().invoke(["--quiet", "parse", *common])
                if not parsed.success:
                    raise TransformError(f"dbt parse failed: {parsed.exception}")
                self._manifest = parsed.result
            # no run_results.json / manifest.json after every invocation (0.6-0.7 s of JSON each, read by nothing
            # here); the documentation site needs its manifest.json
            artifacts = [] if args[0] == "docs" else ["--no-write-json"]
            return dbtRunner(manifest=self._manifest).invoke(["--quiet", *args, *artifacts, *common])

    def build(self, *, full_refresh: bool = False) -> RunSummary:
        """`dbt build`: seeds, every model (views, dictionaries and materialized views too) and the dbt tests."""
        newest = self._newest_ingest()
        summary = self._invoke(["build", *(["--full-refresh"] if full_refresh else [])])
        self._refreshed_up_to = newest
        return summary

    def seed(self) -> RunSummary:
        return self._invoke(["seed"])

    def run(self, *, full_refresh: bool = False) -> RunSummary:
        """`dbt seed` + `dbt run` of every model, without the dbt tests."""
        self._invoke(["seed"])
        return self._invoke(["run", *(["--full-refresh"] if full_refresh else [])])

    def refresh(self, *, force: bool = False) -> RunSummary:
        """`dbt run --selector refresh`: only the models that hold state (a periodic pass once built). Skipped
        (command 'skip', no dbt at all) when nothing was ingested since the last refresh, unless forced: it would
        change nothing."""
        newest = self._newest_ingest()
        if newest == self._refreshed_up_to and not force:
            return RunSummary(command="skip", seconds=0.0, nodes=0, failures=[], timings={})
        # the models a refresh runs exist already: nothing to expose again on a cluster
        summary = self._invoke(["run", "--selector", "refresh"], expose=False)
        self._refreshed_up_to = newest
        return summary

    def _newest_ingest(self) -> tuple[datetime, ...]:
        """The newest ingest time of the raw readings; per shard on the shard's own node for a per-shard transform
        (a shard's transform process needs no other node)."""
        query = "select max(ingested_at) from {database:Identifier}.{table:Identifier}"
        if not self._shards:
            ch = self.settings.clickhouse
            where = [(self.settings, ch.database, ch.raw_readings_table)]
        else:  # each shard's node, and the source tables its dbt reads (shard_settings)
            where = [
                (shard.settings, shard.settings.transform.vars["source_database"],
                 shard.settings.transform.vars["raw_readings_table"])
                for shard in self._shards.values()
            ]  # fmt: skip
        return tuple(
            warehouse.client(node, database=database)
            .query(query, parameters={"database": database, "table": table})
            .result_rows[0][0]
            for node, database, table in where
        )

    def analyses(self, folder: str) -> dict[str, str]:
        """The dbt analyses in analyses/<folder>, compiled (dbt resolves the names of the models they read; the values
        they take stay ClickHouse query parameters, {name:Type}), by analysis name. Compiled once per Transformer."""
        if folder not in self._analyses:
            result = self._dbt(["compile", "--select", f"path:analyses/{folder}"])
            _summary("compile", result, 0.0)  # raises on failure
            self._analyses[folder] = {node.node.name: node.node.compiled_code for node in result.result.results}
        return self._analyses[folder]

    def docs(self) -> Path:
        """`dbt docs generate`: the project's documentation site (index.html, catalog.json); returns its folder."""
        self._invoke(["docs", "generate"])
        return target_dir(self.settings) / "target"

    def operation(self, macro: str, args: dict[str, str]) -> RunSummary:
        return self._invoke(["run-operation", macro, "--args", json.dumps(args)])


def transform_shards(settings: Settings) -> list[int]:
    """The shards a per-shard transform runs on: transform.shard, or every shard; none without per_shard."""
    shard, shards = settings.transform.shard, settings.clickhouse.shards
    if shard is None:
        return list(range(shards)) if settings.transform.per_shard else []
    if not settings.transform.per_shard:
        raise TransformError("transform.shard needs transform.per_shard (dbt on each shard: no replicas)")
    if shard >= shards:
        raise TransformError(f"transform.shard {shard}: the cluster has shards 0..{shards - 1}")
    return [shard]


def _summary(command: str, result: dbtRunnerResult, seconds: float) -> RunSummary:
    failures: list[str] = []
    timings: dict[str, float] = {}
    for node in getattr(result.result, "results", None) or []:
        name = node.node.name if hasattr(node, "node") else node.unique_id
        timings[name] = node.execution_time
        if str(node.status) in ("error", "fail"):
            failures.append(f"{name}: {node.message}")
    if not result.success:
        detail = "; ".join(failures) or str(result.exception or "dbt failed")
        raise TransformError(f"dbt {command} failed: {detail}")
    return RunSummary(command=command, seconds=seconds, nodes=len(timings), failures=failures, timings=timings)


def transform(settings: Settings, *, full_refresh: bool = False, test: bool = True) -> RunSummary:
    """One pass: `dbt build` (seeds, models, tests), or `dbt seed` + `dbt run` without the tests."""
    transformer = Transformer(settings)
    return transformer.build(full_refresh=full_refresh) if test else transformer.run(full_refresh=full_refresh)


def transform_every(
    settings: Settings,
    seconds: float,
    *,
    report: Callable[[RunSummary], None] | None = None,
    on_error: Callable[[TransformError], None] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """`dbt build` once, then `refresh` every `seconds` (start to start) while keep_going(). A failed pass goes to
    on_error (or raises without one) and the next pass is a full build again."""
    transformer = Transformer(settings)
    built = False
    while keep_going():
        began = time.monotonic()
        try:
            summary = transformer.refresh() if built else transformer.build()
        except TransformError as exc:
            if on_error is None:
                raise
            built = False
            on_error(exc)
        else:
            built = True
            if report:
                report(summary)
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
