"""What plantwatch's Grafana builders share: the datasources, the ClickHouse query and the SDK's escape hatches.

grafana-foundation-sdk (pinned to its Grafana 11.6 line) has builders for dashboards, panels, Prometheus queries,
server-side expressions and alert rules, but none for the ClickHouse plugin's query (grafana-clickhouse-datasource is
not among its generated dataquery variants). ``ClickHouseQuery`` is that variant, written the way the SDK's own are
(a ``cogvariants.Dataquery`` model with ``to_json``, a ``cogbuilder.Builder`` for it) and registered with the SDK's
runtime so its ``from_json`` reads such queries back. Their SQL lives in grafana/sql/ (``sql_file``): dashboards/
<dashboard>/<name>.sql for panels, annotations and variables, rules/<uid>.sql for the alert rules. Values come in
through Grafana's macros and variables ($__timeFilter, ${machine}), not Python formatting.
"""

from __future__ import annotations

import typing
from typing import Any

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from plantwatch.settings import PROJECT_ROOT

GRAFANA_DIR = PROJECT_ROOT / "grafana"
SQL_DIR = GRAFANA_DIR / "sql"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_TYPE, uid="plantwatch-clickhouse")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="plantwatch-prometheus")
TABLE, TIME_SERIES = 1, 0  # the ClickHouse plugin's query formats (sqlutil.FormatQueryOption)

T = typing.TypeVar("T")


def sql_file(relative: str) -> str:
    """A query kept in grafana/sql (e.g. ``rules/pw-stale-data.sql``), without its trailing newline."""
    return (SQL_DIR / relative).read_text().strip()


class ClickHouseQuery(cogvariants.Dataquery):
    """A query of the ClickHouse plugin (its ``CHQuery``): SQL in the SQL editor, as a table or a time series."""

    def __init__(self, raw_sql: str = "", fmt: int = TABLE, ref_id: str = "A") -> None:
        self.raw_sql = raw_sql
        self.format = fmt
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": CLICKHOUSE.to_json(),
            "editorType": "sql",
            "format": self.format,
            "queryType": "timeSeries" if self.format == TIME_SERIES else "table",
            "rawSql": self.raw_sql,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClickHouseQuery:
        return cls(data.get("rawSql", ""), data.get("format", TABLE), data.get("refId", "A"))


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(CLICKHOUSE_TYPE, ClickHouseQuery.from_json))


class ClickHouse(cogbuilder.Builder[ClickHouseQuery]):
    """Builder of a ClickHouse query, like the SDK's ``prometheus.Dataquery``: ``ClickHouse(sql).time_series()``."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = ClickHouseQuery(raw_sql.strip())

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def time_series(self) -> typing.Self:
        self._internal.format = TIME_SERIES
        return self


class WithFields(cogbuilder.Builder[T]):
    """Escape hatch: a builder whose model gets JSON fields the SDK's model does not have (merged into its
    ``to_json``), e.g. a query variable's ``definition``. Use only where the SDK lacks the field."""

    def __init__(self, inner: cogbuilder.Builder[T], **fields: object) -> None:
        self.inner = inner
        self.fields = fields

    def build(self) -> T:
        model = self.inner.build()
        to_json = model.to_json  # type: ignore[attr-defined]
        model.to_json = lambda: {**to_json(), **self.fields}  # type: ignore[attr-defined]
        return model
