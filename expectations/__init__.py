"""Data-quality checks for plantwatch, written as Great Expectations 1.x suites that run inside ClickHouse.

- :mod:`plantwatch.expectations.limits` reads each sensor kind's physically possible range from the dbt seed.
- :mod:`plantwatch.expectations.suites` defines the suites: raw readings, freshness, and the derived (dbt) tables.
- :mod:`plantwatch.expectations.checkpoint` binds them to a SQL datasource (clickhouse-connect's SQLAlchemy dialect) and
  runs them as one checkpoint, returning one :class:`~plantwatch.expectations.checkpoint.Outcome` per expectation.
- :mod:`plantwatch.expectations.results` stores outcomes in ClickHouse (``dq_results``) and exposes them as
  Prometheus metrics.
"""

# Suite groups: "raw" (readings and their freshness) runs on the ingested data alone; "derived" needs the dbt marts.
RAW = "raw"
DERIVED = "derived"
GROUPS = (RAW, DERIVED)
