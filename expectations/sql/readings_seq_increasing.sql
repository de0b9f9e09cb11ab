-- Readings whose sequence number does not increase over the previous reading of the same sensor (ordered by event
-- time): a reset, a replay or a duplicate the deduplicated view did not fold.
SELECT machine_id, sensor_id, event_time, seq, prev_seq
FROM
(
    SELECT
        machine_id, sensor_id, event_time, seq,
        lagInFrame(seq) OVER w AS prev_seq,
        row_number() OVER w AS position
    FROM {batch}
    WINDOW w AS (PARTITION BY machine_id, sensor_id ORDER BY event_time, seq ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE position > 1 AND seq <= prev_seq
