-- Each fault the run injected (its fault_labels) with the alerts the alerts mart holds on its machine that began with
-- it: from {slack_s} before the fault's start (an alert starts with its first flagged window, which may open before
-- the fault does) to a minute after its end (as plantwatch/sql/queries/alerts_during.sql). No alert yet: [].
SELECT
    labels.machine_id,
    labels.fault_kind,
    toUnixTimestamp64Milli(labels.start_time) AS start_ms,
    groupUniqArrayIf(
        concat(alerts.category, ':', alerts.kind),
        alerts.started_at >= labels.start_time - toIntervalSecond({slack_s:UInt32})
            AND alerts.started_at <= labels.end_time + INTERVAL 60 SECOND
    ) AS alert_kinds
FROM (
    SELECT machine_id, fault_kind, start_time, end_time
    FROM ${database}.${fault_labels_table} FINAL
    WHERE run_id = {run_id:String}
) AS labels
LEFT JOIN ${database}.alerts AS alerts ON alerts.machine_id = labels.machine_id
GROUP BY labels.machine_id, labels.fault_kind, start_ms
