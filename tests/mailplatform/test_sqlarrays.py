"""Array literals as one parameter come back from PostgreSQL as the values that went in."""

import pytest
from django.db import connection

from mailplatform.sqlarrays import int_array, text_array

pytestmark = pytest.mark.django_db


def test_int_array_round_trips_and_refuses_what_is_not_an_integer():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [int_array([3, -1, 2**40])])
        assert cursor.fetchone()[0] == [3, -1, 2**40]
        cursor.execute("SELECT %s::bigint[]", [int_array([])])
        assert cursor.fetchone()[0] == []
    with pytest.raises(ValueError):
        int_array(["1}; DROP TABLE x; --"])


def test_text_array_round_trips_quotes_backslashes_commas_and_null_words():
    values = ["a,b", 'say "hi"', "back\\slash", "{braces}", "NULL", " spaced ", "", "it's", "é"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [text_array(values)])
        assert cursor.fetchone()[0] == values
