"""The suite's own parallel set-up: each pytest-xdist worker gets a Redis DB of its own."""

from __future__ import annotations

import pytest

from conftest import worker_redis_url


def test_workers_count_down_from_the_base_db_and_stay_within_redis_16():
    assert worker_redis_url("redis://127.0.0.1:6379/15", 0) == "redis://127.0.0.1:6379/15"
    assert worker_redis_url("redis://127.0.0.1:6379/15", 1) == "redis://127.0.0.1:6379/14"
    assert worker_redis_url("redis://:pw@host:6380/3?timeout=5", 2) == (
        "redis://:pw@host:6380/1?timeout=5"
    )


def test_a_base_db_too_low_for_the_worker_is_a_usage_error():
    assert worker_redis_url("redis://127.0.0.1:6379", 0) == "redis://127.0.0.1:6379/0"
    with pytest.raises(pytest.UsageError, match="no Redis DB for xdist worker gw1"):
        worker_redis_url("redis://127.0.0.1:6379", 1)
