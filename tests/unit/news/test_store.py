"""NewsStore: dedup by hash, first_seen kept, monthly files, atomic writes, damage reports,
and per-source state files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

import news.store as store_module
from news.schema import COLUMNS, NewsRecord
from news.store import NewsStore, NewsStoreError, StateError

NOV = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
DEC = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def item(title: str, seen: datetime, source: str = "coindesk", summary: str = "s"):
    return NewsRecord.create(source=source, title=title, summary=summary, published=None,
                             first_seen=seen, assets=("BTC",))


def month_file(store: NewsStore, month: str):
    return store.directory / f"month={month}" / "data.parquet"


def test_append_returns_the_new_count_and_drops_known_hashes_within_and_across_calls(tmp_path):
    store = NewsStore(tmp_path)

    first = store.append([item("a", DEC), item("b", DEC), item("a", DEC, source="decrypt")])
    second = store.append([item("b", DEC), item("c", DEC)])

    assert (first, second) == (2, 1)
    frame = store.read()
    assert list(frame["title"]) == ["a", "b", "c"]
    assert frame["hash"].is_unique
    assert frame.loc[0, "source"] == "coindesk"


def test_a_re_collected_item_keeps_its_first_seen(tmp_path):
    store = NewsStore(tmp_path)
    store.append([item("a", DEC)])

    later = store.append([item("a", DEC + timedelta(days=40), source="cointelegraph")])

    frame = store.read()
    assert later == 0
    assert list(frame["first_seen"]) == [pd.Timestamp(DEC)]
    assert list(frame["source"]) == ["coindesk"]
    assert store.months() == ["2026-12"]


def test_items_are_partitioned_by_month_of_first_seen_and_read_sorted(tmp_path):
    store = NewsStore(tmp_path)

    store.append([item("dec", DEC), item("nov", NOV)])

    assert store.months() == ["2026-11", "2026-12"]
    assert month_file(store, "2026-11").is_file() and month_file(store, "2026-12").is_file()
    frame = store.read()
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["title"]) == ["nov", "dec"]
    assert str(frame["first_seen"].dtype) == "datetime64[ms, UTC]"
    assert frame.loc[0, "assets"] == ["BTC"]


def test_read_filters_first_seen_in_start_inclusive_end_exclusive(tmp_path):
    store = NewsStore(tmp_path)
    store.append([item("nov", NOV), item("dec", DEC), item("dec2", DEC + timedelta(hours=1))])

    assert list(store.read(start=DEC)["title"]) == ["dec", "dec2"]
    assert list(store.read(end="2026-12-01")["title"]) == ["nov"]  # only November opened
    assert list(store.read("2026-12-01 12:00", "2026-12-01 13:00")["title"]) == ["dec"]
    assert store.read(start="2027-01-01").empty


def test_an_empty_store_reads_as_an_empty_frame_with_the_schema_columns(tmp_path):
    frame = NewsStore(tmp_path).read()

    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)


def test_plain_pyarrow_reads_the_dataset_and_ignores_state_and_lock_files(tmp_path):
    store = NewsStore(tmp_path)
    store.append([item("nov", NOV), item("dec", DEC)])
    store.save_state("coindesk", {"etag": "x"})

    table = pq.read_table(store.directory)

    assert table.num_rows == 2
    assert sorted(table.column("month").to_pylist()) == ["2026-11", "2026-12"]


def test_a_damaged_month_file_is_a_clear_error_that_loses_nothing(tmp_path):
    store = NewsStore(tmp_path)
    store.append([item("nov", NOV), item("dec", DEC)])
    damaged = month_file(store, "2026-12")
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # half-written
    damaged_bytes = damaged.read_bytes()
    november = month_file(store, "2026-11").read_bytes()

    with pytest.raises(NewsStoreError, match=rf"cannot read news file {damaged}.*move it out"):
        store.read()
    with pytest.raises(NewsStoreError, match=str(damaged)):
        store.append([item("new", DEC + timedelta(hours=2))])

    assert damaged.read_bytes() == damaged_bytes
    assert month_file(store, "2026-11").read_bytes() == november
    assert list(store.read(end="2026-12-01")["title"]) == ["nov"]  # only November opened


def test_a_write_killed_midway_leaves_the_stored_month_intact(tmp_path, monkeypatch):
    store = NewsStore(tmp_path)
    store.append([item("a", DEC)])
    before = month_file(store, "2026-12").read_bytes()
    real_write = pq.write_table

    def dying_write(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.pq, "write_table", dying_write)
    with pytest.raises(KeyboardInterrupt):
        store.append([item("b", DEC)])
    monkeypatch.setattr(store_module.pq, "write_table", real_write)

    assert month_file(store, "2026-12").read_bytes() == before
    assert list(store.read()["title"]) == ["a"]
    assert store.append([item("b", DEC)]) == 1
    assert list(store.read()["title"]) == ["a", "b"]
    assert not list(store.directory.glob("month=*/.*.tmp"))


def test_a_temp_file_left_by_a_killed_writer_is_ignored_and_then_removed(tmp_path):
    store = NewsStore(tmp_path)
    store.append([item("a", DEC)])
    leftover = month_file(store, "2026-12").parent / ".deadbeef.tmp"
    leftover.write_bytes(b"PAR1 partial")

    assert list(store.read()["title"]) == ["a"]
    store.append([item("b", DEC)])
    assert not leftover.exists()


def test_state_round_trips_per_source_and_starts_empty(tmp_path):
    store = NewsStore(tmp_path)

    store.save_state("coindesk", {"etag": 'W/"1"', "last_modified": None})

    assert store.load_state("coindesk") == {"etag": 'W/"1"', "last_modified": None}
    assert store.load_state("decrypt") == {}
    assert store.state_path("coindesk") == tmp_path / "news" / "_state" / "coindesk.json"
    assert not list(store.state_path("coindesk").parent.glob(".*"))


@pytest.mark.parametrize("content", ["{truncated", "[1, 2]", "\xff\xfe"])
def test_a_corrupt_state_file_is_a_clear_error_naming_it(tmp_path, content):
    store = NewsStore(tmp_path)
    path = store.state_path("coindesk")
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="latin-1")

    with pytest.raises(StateError, match=rf"state file {path} of source 'coindesk'.*delete it"):
        store.load_state("coindesk")


def test_state_source_names_cannot_escape_the_state_directory(tmp_path):
    with pytest.raises(ValueError, match="source name"):
        NewsStore(tmp_path).state_path("../../etc/passwd")


def test_state_is_written_as_json(tmp_path):
    store = NewsStore(tmp_path)

    store.save_state("cryptopanic", {"last_id": 7})

    assert json.loads(store.state_path("cryptopanic").read_text()) == {"last_id": 7}
