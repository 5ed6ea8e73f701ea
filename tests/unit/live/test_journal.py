"""The session journal: a bar is committed whole or not at all, and one loop holds it."""

import json

import pytest

from live.journal import STATE, Journal, JournalError, read_state


def _commit(journal, bar):
    journal.commit({"last_bar": bar}, {"ledger.jsonl": [{"bar_time": bar, "qty": 1.0}],
                                       "steps.jsonl": [{"bar_time": bar}]})


def test_lines_of_a_bar_the_state_does_not_hold_are_cut_on_open(tmp_path):
    journal = Journal(tmp_path)
    with journal.held():
        for bar in (1, 2, 3):
            _commit(journal, bar)
        # a crash after bar 4's lines were written but before its state replaced bar 3's
        with (tmp_path / "ledger.jsonl").open("a") as f:
            f.write(json.dumps({"bar_time": 4, "qty": 1.0}) + "\n")
            f.write('{"bar_time": 5, "qt')  # torn mid-line
        state = journal.open()
    assert state == {"last_bar": 3}
    assert [r["bar_time"] for r in journal.rows("ledger.jsonl")] == [1, 2, 3]
    assert [r["bar_time"] for r in journal.rows("steps.jsonl")] == [1, 2, 3]


def test_a_leftover_temporary_state_file_is_ignored_and_removed(tmp_path):
    journal = Journal(tmp_path)
    with journal.held():
        _commit(journal, 7)
        (tmp_path / f".{STATE}.abc.tmp").write_text('{"last_bar": 99')
        assert journal.open() == {"last_bar": 7}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_second_loop_on_one_session_is_refused(tmp_path):
    with (
        Journal(tmp_path).held(),
        pytest.raises(JournalError, match="another live loop"),
        Journal(tmp_path).held(),
    ):
        pass


def test_an_unreadable_state_is_a_clear_error(tmp_path):
    (tmp_path / STATE).write_text("{not json")
    with pytest.raises(JournalError, match="unreadable session state"):
        read_state(tmp_path)


def test_stop_requests_are_files_the_loop_sees(tmp_path):
    journal = Journal(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    assert not journal.stop_requested()
    journal.request_stop()
    assert journal.stop_requested()
    journal.clear_stop()
    assert not journal.stop_requested()
