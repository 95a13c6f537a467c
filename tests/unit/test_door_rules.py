"""The front door's own rules, in-process: the quota escrow, strict query numbers, the rate limiter."""
from __future__ import annotations

import random

import pytest
from flask import Flask

from services.common.errors import HTTPProblem
from services.ingest.quotas import Reservation, give_back, parts, plan
from services.ingest.ratelimit import RateLimiter
from services.pipeline.params import choice_arg, int_arg


@pytest.mark.parametrize("limit, shards", [(5, 10), (10, 10), (0, 3), (1_000_000, 7), (3, 1)])
def test_the_parts_of_a_quota_sum_to_it(limit, shards):
    p = parts(limit, shards)
    assert len(p) == shards and sum(p) == limit and max(p) - min(p) <= 1


def _reserve(store: dict, shares: dict, need: dict, n: int, start: int):
    takes, seen = plan([(start + k) % n for k in range(n)], lambda i: store.get(i, {}), shares, need)
    for i, take in (takes or {}).items():
        store[i] = {k: store.get(i, {}).get(k, 0) + take.get(k, 0) for k in need}
    return takes, seen


@pytest.mark.parametrize("seed", range(20))
def test_reservations_never_exceed_the_quota_and_are_refused_only_when_it_is_used(seed):
    """Whatever the sizes and starting shards: the sum stays within the quota, and a refusal
    means the whole day really has too little left (no room is stranded on other shards)."""
    rnd = random.Random(seed)
    n = rnd.randint(1, 10)
    lim = {"uploads": rnd.randint(0, 30), "bytes": rnd.randint(0, 5000)}
    shares = {k: parts(v, n) for k, v in lim.items()}
    store: dict = {}
    for _ in range(60):
        need = {"uploads": 1, "bytes": rnd.randint(1, 900)}
        before = {k: sum(s.get(k, 0) for s in store.values()) for k in lim}
        takes, seen = _reserve(store, shares, need, n, rnd.randrange(n))
        after = {k: sum(s.get(k, 0) for s in store.values()) for k in lim}
        assert all(after[k] <= lim[k] for k in lim)
        if takes is None:
            assert seen == before and any(before[k] + need[k] > lim[k] for k in lim)
            assert after == before
        else:
            assert after == {k: before[k] + need[k] for k in lim}


def test_a_reservation_gives_back_at_most_what_it_took_from_the_shards_it_took_from():
    r = Reservation("c_2026-12-07", {3: {"uploads": 1, "bytes": 100}, 4: {"bytes": 50}})
    assert r.total("bytes") == 150 and Reservation.from_doc(r.to_doc()) == r
    assert give_back(r, {"bytes": 120}) == {3: {"bytes": 100}, 4: {"bytes": 20}}
    assert give_back(r, {"uploads": 1, "bytes": 150}) == {3: {"uploads": 1, "bytes": 100}, 4: {"bytes": 50}}
    assert give_back(r, {"bytes": 0}) == {}


_app = Flask(__name__)


@pytest.mark.parametrize("raw", ["\u00b2", "\u0663", "3.0", " 3", "3 ", "+3", "-1", "0", "101", "", "9" * 40, "0x10",
                                 "3\n", "\uff13"])
def test_query_numbers_are_ascii_digits_within_bounds_else_400_naming_the_parameter(raw):
    with _app.test_request_context(query_string={"limit": raw}):
        with pytest.raises(HTTPProblem) as caught:
            int_arg("limit", 20, 1, 100)
    assert caught.value.status == 400 and caught.value.extra == {"parameter": "limit"}
    assert "limit" in caught.value.detail and "1 to 100" in caught.value.detail


def test_query_numbers_that_are_fine():
    for query, want in (({}, 20), ({"limit": "1"}, 1), ({"limit": "100"}, 100), ({"limit": "007"}, 7)):
        with _app.test_request_context(query_string=query):
            assert int_arg("limit", 20, 1, 100) == want


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_a_burst_then_the_sustained_rate_and_a_retry_after_that_is_true():
    clock = Clock()
    rl = RateLimiter(per_second=2, burst=5, clock=clock)
    assert [rl.wait_for("a") for _ in range(5)] == [0] * 5
    assert rl.wait_for("a") == pytest.approx(0.5)
    with pytest.raises(HTTPProblem) as caught:
        rl.admit("a")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    assert "CLIENT_RATE_PER_SECOND" in caught.value.detail
    assert rl.wait_for("b") == 0  # another client has its own bucket
    clock.t += 0.5
    assert rl.wait_for("a") == 0  # refilled at 2 per second (refused requests took nothing)
    clock.t += 100
    assert [rl.wait_for("a") for _ in range(6)].count(0) == 5  # never more than the burst saved up


def test_zero_rate_is_off():
    rl = RateLimiter(per_second=0, burst=0, clock=Clock())
    assert all(rl.wait_for("a") == 0 for _ in range(1000))


def test_a_rate_with_no_burst_stops_start_up_naming_the_setting():
    with pytest.raises(ValueError, match="CLIENT_RATE_BURST"):
        RateLimiter(per_second=5, burst=0)


class Clients:
    """ClientStore's `current` over a dict: the client's document as it is now."""

    def __init__(self, docs: dict):
        self.docs = docs

    def current(self, client_id):
        return self.docs.get(client_id)


def test_finalize_accepts_only_an_owner_in_good_standing_now():
    from services.ingest.finalized import ClientRevoked, _check_owner

    clients = Clients({"0123456789ab": {"revoked_at": None}, "ba9876543210": {"revoked_at": "2026-12-07T12:00:00Z"}})
    _check_owner(clients, "0123456789ab")
    _check_owner(clients, "t" + "0" * 20)  # an ID-token client has no document of ours to revoke
    _check_owner(clients, None)  # granted before owners were recorded
    for gone in ("ba9876543210", "ffffffffffff"):  # revoked, or no longer there
        with pytest.raises(ClientRevoked) as caught:
            _check_owner(clients, gone)
        assert caught.value.error_class == "forbidden" and "revoked" in caught.value.reason


def test_on_duplicate_is_one_of_its_choices_else_400_naming_it():
    from services.pipeline.neardup import ON_DUPLICATE

    for query, want in (({}, "process"), ({"on_duplicate": "skip"}, "skip"), ({"on_duplicate": "reject"}, "reject")):
        with _app.test_request_context(query_string=query):
            assert choice_arg("on_duplicate", "process", ON_DUPLICATE) == want
    for raw in ("Reject", "", "process,skip", "ignore"):
        with _app.test_request_context(query_string={"on_duplicate": raw}), pytest.raises(HTTPProblem) as caught:
            choice_arg("on_duplicate", "process", ON_DUPLICATE)
        assert caught.value.status == 400 and caught.value.extra == {"parameter": "on_duplicate"}
