"""Template miner and window comparison (investigation.logmining). Pure, made-up lines only."""
import json
import random
import time

import pytest

from investigation.logmining import LogMiner, compare_windows, extract_trace_ids, mask, message_of, mine


@pytest.mark.parametrize("text, expected", [
    ("connect to 10.1.2.3 failed", "connect to <*> failed"),
    ("connect to 10.1.2.3:8080 failed", "connect to <*>:<*> failed"),  # port: own wildcard
    ("peer /192.168.0.7:44321 closed", "peer <*>:<*> closed"),
    ("bind fe80::1ff:fe23:4567:890a ok", "bind <*> ok"),
    ("bind ::1 ok", "bind <*> ok"),
    ("bind 2001:db8:85a3:0:0:8a2e:370:7334 ok", "bind <*> ok"),
    ("order 3fa85f64-5717-4562-b3fc-2c963f66afa6 paid", "order <*> paid"),
    ("ptr 0x7ffd5a3c at deadbeef1234", "ptr <*> at <*>"),
    ("open /var/lib/app/data.db failed", "open <*> failed"),
    ("took 150ms", "took <*>"),
    ("took 1.5s", "took <*>"),
    ("used 80% of 4GB", "used <*> of <*>"),
    ("free 413.9 MB", "free <*>"),
    ("GET https://shop.example/cart?id=7 done", "GET https://<*> done"),
    ("mail to ops@example.org bounced", "mail to <*> bounced"),
    ("at 2024-03-01T12:00:05.123Z retry", "at <*> retry"),
    ("at Mon Mar  4 12:00:05 2024 retry", "at <*> retry"),
    ("clock 12:00:05 drift", "clock <*>:<*>:<*> drift"),
    ("version 2.6.9-rc1 loaded", "version <*> loaded"),
    ("offset -42 applied", "offset <*> applied"),
    ("block blk_-12345 and rdd_4_2 and task_77_m_3", "block <*> and <*> and <*>"),
    ("flag true ok", "flag <*> ok"),
    ("uid=0 user=root", "uid=<*> user=root"),
    ("screen 1920x1080", "screen <*>"),
    # numbers inside words are kept: they usually name a thing, not a value
    ("login on tty2 via eth0 and jk2_init() CPU#3", "login on tty2 via eth0 and jk2_init() CPU#<*>"),
])
def test_mask_generic(text, expected):
    assert mask(text) == expected


def test_mine_groups_and_refines_templates():
    lines = [f"session opened for user {u} by (uid={i})" for i, u in enumerate(["alice", "bob", "carol"] * 3)]
    lines += [f"sshd {w} succeeded" for w in ("startup", "shutdown", "startup")]
    lines += [f"auth failure user={u} rhost=10.0.0.{i}" for i, u in enumerate(["ann", "ben", "cid", "dan"])]
    lines += ["drop " + " ".join(f"blk_{i}" for i in range(n)) for n in (1, 3, 7)]
    out = mine(lines)
    assert len(out) == len(lines)
    assert set(out[:9]) == {"session opened for user <*> by (uid=<*>)"}
    # a closed two-word choice is part of the message: re-split
    assert out[9:12] == ["sshd startup succeeded", "sshd shutdown succeeded", "sshd startup succeeded"]
    # common punctuation prefix kept around the variable
    assert set(out[12:16]) == {"auth failure user=<*> rhost=<*>"}
    # variable-length lists are one template
    assert set(out[16:]) == {"drop <*>"}


def test_mine_is_deterministic_and_order_stable():
    rng = random.Random(7)
    lines = [rng.choice([f"job {rng.randint(1, 999)} done in {rng.randint(1, 99)}ms",
                         f"cache miss for key k{rng.randint(1, 5)}",
                         f"worker w-{rng.randint(1, 9)} started on 10.0.0.{rng.randint(1, 254)}"]) for _ in range(500)]
    a, b = mine(lines), mine(list(lines))
    assert a == b
    assert len(set(a)) <= 6
    assert a[lines.index(next(x for x in lines if x.startswith("job")))] == "job <*> done in <*>"


def test_json_lines_mined_on_message_keep_level():
    lines = [json.dumps({"ts": i, "level": lvl, "service": "payment", "msg": f"charge {i} declined"})
             for i, lvl in enumerate(["error", "error", "info"])]
    assert message_of(lines[0]) == "[error] charge 0 declined"
    out = mine(lines + ['{"message": "plain text"}', "not json {"])
    assert out[0] == out[1] == "[error] charge <*> declined"
    assert out[2] == "[info] charge <*> declined"
    assert out[3] == "plain text" and out[4] == "not json {"


def test_trace_ids():
    t32, t16 = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert extract_trace_ids(json.dumps({"msg": "x", "trace_id": t32})) == [t32]
    assert extract_trace_ids(f"boom traceID={t16} more") == [t16]
    assert extract_trace_ids(f'payload "trace_id": "{t32.upper()}"') == [t32]
    assert extract_trace_ids(f"traceparent=00-{t32}-{t16}-01") == [t32]
    assert extract_trace_ids("order 4bf92f3577b34da6a3ce929d0e0e4736 paid") == []  # no key: not a trace id


def _steady(n, t0, span, rng):
    return [(t0 + span * i / n, f"GET /api/items/{rng.randint(1, 500)} 200 in {rng.randint(1, 90)}ms") for i in range(n)]


def test_compare_windows_new_rising_steady():
    rng = random.Random(3)
    baseline = _steady(600, 0, 600, rng) + [(i * 60.0, f"cache refresh {i} slow") for i in range(10)]
    window = _steady(600, 600, 600, rng)
    window += [(650.0 + i, json.dumps({"level": "error", "msg": "connection pool exhausted",
                                      "trace_id": f"{i:032x}"})) for i in range(8)]
    window += [(700.0 + i, f"cache refresh {i} slow") for i in range(60)]
    out = compare_windows(window, baseline, window_seconds=600, baseline_seconds=600)
    by = {s.template: s for s in out}
    assert "GET <*> <*> in <*>" not in by  # steady: not reported
    new = by["[error] connection pool exhausted"]
    assert new.new and new.count == 8 and new.baseline_count == 0 and new.first_seen == 650.0
    assert new.trace_ids == [f"{i:032x}" for i in range(5)]
    assert len(new.examples) == 3
    rising = by["cache refresh <*> slow"]
    assert not rising.new and rising.count == 60 and rising.baseline_count == 10 and rising.rate_ratio > 4
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)


def test_compare_windows_not_significant_small_rise():
    rng = random.Random(5)
    baseline = [(float(i), f"retry {i} scheduled") for i in range(20)] + _steady(200, 0, 600, rng)
    window = [(600.0 + i, f"retry {i} scheduled") for i in range(24)] + _steady(200, 600, 600, rng)
    assert compare_windows(window, baseline, window_seconds=600, baseline_seconds=600) == []


def test_compare_windows_bounded_and_fast_on_100k_lines():
    rng = random.Random(11)
    baseline = [(float(i), f"user {rng.randint(1, 10**6)} logged in from 10.0.{rng.randint(0, 255)}.1")
                for i in range(50_000)]
    # window: 60 distinct new templates (words, not numbers) + the steady one
    words = [f"{a} {b}" for a in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
             for b in ("kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango")]
    window = [(50_000.0 + i, f"user {rng.randint(1, 10**6)} logged in from 10.0.{rng.randint(0, 255)}.1"
               if i % 2 else f"failure {words[i % 60]} code {i} trace_id={i:032x}") for i in range(50_000)]
    t0 = time.perf_counter()
    out = compare_windows(window, baseline, window_seconds=600, baseline_seconds=600, max_templates=20, max_examples=3)
    elapsed = time.perf_counter() - t0
    assert elapsed < 8, elapsed
    assert 0 < len(out) <= 20
    assert sum(len(s.examples) for s in out) <= 60
    assert all(len(s.trace_ids) <= 5 for s in out)
    assert all(s.new and s.template.startswith("failure") for s in out)


def test_streaming_miner_keys():
    m = LogMiner()
    k1, k2 = m.add("disk sda1 at 91%"), m.add("disk sda1 at 97%")
    assert k1 == k2 and m.template(k1) == "disk sda1 at <*>"
