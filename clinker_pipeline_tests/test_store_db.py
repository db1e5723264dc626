"""The shared DuckDB helper: transactions, keyed history tables and the one upsert."""

import duckdb
import pandas as pd
import pytest

from clinker_pipeline.lib.store.db import primary_key, transaction, upsert


def test_upsert_inserts_new_keys_and_replaces_revised_ones():
    con = duckdb.connect()
    first = pd.DataFrame({"week": ["2026-01-05", "2026-01-12"], "price": [3.5, 3.6]})
    assert upsert(con, "prices", first, ["week"]) == {"inserted": 2, "revised": 0}
    assert primary_key(con, "prices") == ("week",)
    later = pd.DataFrame(
        {"week": ["2026-01-12", "2026-01-19"], "price": [3.7, 3.8], "note": ["rev", "new"]}
    )
    assert upsert(con, "prices", later, ["week"]) == {"inserted": 1, "revised": 1}
    rows = con.execute("SELECT week, price, note FROM prices ORDER BY week").fetchall()
    assert rows == [
        ("2026-01-05", 3.5, None),
        ("2026-01-12", 3.7, "rev"),
        ("2026-01-19", 3.8, "new"),
    ]


def test_a_table_written_before_keys_existed_gets_its_primary_key():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE prices AS SELECT * FROM (VALUES ('w1', 1.0), ('w1', 1.0)) t(week, price)"
    )
    assert primary_key(con, "prices") == ()
    upsert(con, "prices", pd.DataFrame({"week": ["w2"], "price": [2.0]}), ["week"])
    assert primary_key(con, "prices") == ("week",)
    assert con.execute("SELECT week FROM prices ORDER BY week").fetchall() == [("w1",), ("w2",)]


def test_transaction_rolls_back_everything_on_error():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
    assert con.execute("SELECT x FROM t").fetchall() == [(2,)]
