SELECT machine_id FROM machines ORDER BY machine_id
