{#- Key combinations that occur more than once (after FINAL for ReplacingMergeTree models). -#}
{% test unique_combination(model, columns, final=false) %}
select {{ columns | join(', ') }}, count() as occurrences
from {{ model }} {{ 'final' if final }}
group by {{ columns | join(', ') }}
having occurrences > 1
{% endtest %}
