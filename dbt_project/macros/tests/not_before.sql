{#- Rows where the column is earlier than another column of the same row (e.g. an end before its start). -#}
{% test not_before(model, column_name, other) %}
select *
from {{ model }}
where {{ column_name }} < {{ other }}
{% endtest %}
