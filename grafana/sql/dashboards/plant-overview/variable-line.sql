SELECT DISTINCT line_id FROM machines ORDER BY line_id
