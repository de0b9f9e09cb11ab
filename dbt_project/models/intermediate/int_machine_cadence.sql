{{ config(**incremental_config('machine_id')) }}
-- Each machine's sampling period, measured from its data, and the detector window that follows from it: var
-- readings_per_window periods, at least var window_seconds. Measured once, when the machine's best-served sensor has
-- sent var cadence_min_readings readings: the median step between a sensor's first readings (up to a thousand),
-- the slowest sensor's, to two significant digits. Kept from then on, so the machine's windows never change size
-- (`transform --full-refresh` measures again). A machine measured here is scored from its first reading.
with

readings as (
    select * from {{ ref('stg_readings') }}
),

per_minute as (
    select * from {{ ref('int_readings_per_minute') }}
),

unmeasured as (
    select *
    from readings
    {%- if is_incremental() %}
    -- the machines with readings and no cadence yet, found in the small per-minute table: a pass with none reads no
    -- readings at all (a `not in` straight on the readings read every machine's keys)
    where machine_id in (select machine_id from per_minute where machine_id not in (select machine_id from {{ this }}))
    {%- endif %}
),

per_sensor as (
    select
        machine_id,
        sensor_id,
        count() as readings,
        groupArraySorted(1000)({{ ms('event_time') }}) as first_times,
        max(ingested_at) as max_ingested_at
    from unmeasured
    group by machine_id, sensor_id
),

sensor_periods as (
    select
        machine_id,
        sensor_id,
        readings,
        arrayFilter(step -> step > 0, arrayDifference(first_times)) as steps,
        if(length(steps) >= 2, arrayReduce('median', steps), 0.) as period_ms,
        max_ingested_at
    from per_sensor
),

per_machine as (
    select
        machine_id,
        max(readings) as best_readings,
        maxIf(period_ms, period_ms > 0) as slowest_period_ms,
        max(max_ingested_at) as max_ingested_at
    from sensor_periods
    group by machine_id
    having best_readings >= {{ var('cadence_min_readings') }} and slowest_period_ms > 0
),

rounded as (
    select
        machine_id,
        pow(10, floor(log10(slowest_period_ms)) - 1) as magnitude,
        toInt64(round(slowest_period_ms / magnitude) * magnitude) as period_ms,
        toInt64(greatest({{ var('window_seconds') * 1000 }}, {{ var('readings_per_window') }} * period_ms))
            as window_ms,
        toUInt32(best_readings) as measured_on_readings,
        max_ingested_at,
        now64(3) as computed_at
    from per_machine
),

cadence as (
    select machine_id, period_ms, window_ms, measured_on_readings, max_ingested_at, computed_at
    from rounded
)

select * from cadence
