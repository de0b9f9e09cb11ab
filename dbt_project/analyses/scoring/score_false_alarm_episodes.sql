-- Machine alert episodes (the alerts mart) of the scored machines that began after the machine's scored_from and
-- overlap no labelled machine fault: false alarms an engineer would have been called out for.
WITH

scope AS (
    {{ scored_machines() }}
),

labels AS (
    {{ machine_fault_periods() }}
),

episodes AS (
    SELECT alerts.machine_id AS machine_id, alerts.kind AS kind, alerts.started_at AS started_at,
           alerts.last_flag_at AS last_flag_at
    FROM {{ ref('alerts') }}
    INNER JOIN scope ON alerts.machine_id = scope.machine_id
    WHERE alerts.category = 'machine' AND alerts.started_at >= scope.scored_from
),

-- one episode per machine however many kinds and sensors flagged it at once: overlapping alerts merge
merged AS (
    SELECT machine_id, min(started_at) AS started_at, max(last_flag_at) AS last_flag_at, groupUniqArray(kind) AS kinds
    FROM (
        SELECT *, sum(toUInt64(started_at > previous_last)) OVER (
            PARTITION BY machine_id ORDER BY started_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS episode
        FROM (
            SELECT *, max(last_flag_at) OVER (
                PARTITION BY machine_id ORDER BY started_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS previous_last
            FROM episodes
        )
    )
    GROUP BY machine_id, episode
)

SELECT merged.machine_id AS machine_id, merged.started_at AS started_at, merged.last_flag_at AS last_flag_at,
       merged.kinds AS kinds
FROM merged
LEFT JOIN labels ON merged.machine_id = labels.machine_id
WHERE NOT arrayExists(p -> merged.last_flag_at > p.1 AND merged.started_at < p.2, labels.periods)
ORDER BY machine_id, started_at
