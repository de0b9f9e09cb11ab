-- A machine's first reading at or after {after}, and the time of its reading number {rows:UInt64} from there
-- (0-based; the end of a healthy period of that many rows), or NULL when it has no more readings than that. A row
-- is an instant: several sensors read at one time count once.
SELECT
    min(event_time) AS first_at,
    arrayElementOrNull(arraySort(groupUniqArray(event_time)), {rows:UInt64} + 1) AS row_at,
    uniqExact(event_time) AS rows_seen
FROM {readings:Identifier}
WHERE machine_id = {machine:String} AND event_time >= {after:DateTime64(3, 'UTC')}
