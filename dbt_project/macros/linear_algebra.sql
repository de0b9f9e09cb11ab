{#- Small dense matrices as Array(Array(Float64)), for the multivariate detector (ClickHouse has no linalg). -#}

{#- The inverse of a symmetric positive definite matrix (Gauss-Jordan on [M | I], no pivoting needed). -#}
{% macro matrix_inverse(m) -%}
arrayMap(
    row -> arraySlice(row, intDiv(length(row), 2) + 1),
    arrayFold(
        (acc, k) -> arrayMap(
            (row, i) -> if(
                i = k,
                arrayMap(x -> x / acc[k][k], acc[k]),
                arrayMap((x, p) -> x - row[k] * p / acc[k][k], row, acc[k])
            ),
            acc, arrayEnumerate(acc)
        ),
        range(1, length({{ m }}) + 1),
        arrayMap(
            (row, i) -> arrayConcat(row, arrayMap(j -> toFloat64(j = i), range(1, length({{ m }}) + 1))),
            {{ m }}, arrayEnumerate({{ m }})
        )
    )
)
{%- endmacro %}

{#- m + r * I -#}
{% macro add_ridge(m, r) -%}
arrayMap((row, i) -> arrayMap((x, j) -> x + if(i = j, {{ r }}, 0.), row, arrayEnumerate(row)), {{ m }}, arrayEnumerate({{ m }}))
{%- endmacro %}

{#- matrix x vector -#}
{% macro mat_vec(m, v) -%}
arrayMap(row -> arraySum(arrayMap((a, b) -> a * b, row, {{ v }})), {{ m }})
{%- endmacro %}

{% macro dot(a, b) -%}
arraySum(arrayMap((x, y) -> x * y, {{ a }}, {{ b }}))
{%- endmacro %}
