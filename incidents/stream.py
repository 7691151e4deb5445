"""The sequenced, bounded stream of live events that pages catch up from.

Every event `incidents.events` delivers is first appended here: one Redis script increments the
stream's sequence and pushes the event onto a bounded list (the ring), atomically, so the ring
holds consecutive sequence numbers. A page reads the head of the stream (its *cursor*) before it
queries anything, renders with it, and sends it when its WebSocket connects; the consumer, already
subscribed, answers with the events after the cursor. An event is either committed before the
cursor was read (so the page's queries saw it) or appended after, in which case it is in the ring
when the consumer reads it, or its group message (sent after the append) reaches the subscription.

A cursor is `<epoch>-<seq>`. The epoch is chosen when the stream is (re)created — an empty Redis,
a restart without persistence — so a cursor from another life of the stream is never compared
with this one's numbers. A cursor the ring no longer reaches, one from another epoch, or none at
all gets "resync": the page refreshes every region.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from functools import wraps
from typing import Any

import redis
from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_RING_SIZE = 1000
CURSOR = re.compile(r"^([0-9a-f]{1,32})-([0-9]{1,18})$")

# KEYS: head hash, ring list. ARGV: a new epoch, the entry, the ring size.
_APPEND = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('RPUSH', KEYS[2], seq .. '\\n' .. ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
return {redis.call('HGET', KEYS[1], 'epoch'), seq}
"""
# ARGV: a new epoch.
_HEAD = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
return {redis.call('HGET', KEYS[1], 'epoch'), tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
"""
# ARGV: the cursor's epoch and sequence. Returns epoch, head, 1 + entries after the cursor, or
# epoch, head, 0 when the cursor cannot be served (other epoch, ahead of the head, trimmed away).
_SINCE = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'', 0, 0, {}} end
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local since = tonumber(ARGV[2])
local first = head - redis.call('LLEN', KEYS[2]) + 1
if epoch ~= ARGV[1] or since > head or since + 1 < first then return {epoch, head, 0, {}} end
if since == head then return {epoch, head, 1, {}} end
return {epoch, head, 1, redis.call('LRANGE', KEYS[2], since + 1 - first, -1)}
"""

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            # Short timeouts: a page must render (without a cursor) when Redis is away.
            client = _clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        return client


def _keys() -> list[str]:
    prefix = getattr(settings, "CHANNEL_PREFIX", "rs")
    return [f"{prefix}:live:head", f"{prefix}:live:ring"]


def _ring_size() -> int:
    return max(1, int(getattr(settings, "LIVE_CATCHUP_EVENTS", DEFAULT_RING_SIZE)))


def _cursor(epoch: bytes | str, seq: int) -> str:
    epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
    return f"{epoch}-{int(seq)}" if epoch else ""


def append(event_type: str, data: dict[str, Any], *, incident_id: int | None) -> str:
    """Number one event and keep it in the ring; returns its cursor. Raises when Redis fails."""
    entry = json.dumps({"event": event_type, "data": data, "incident": incident_id}, separators=(",", ":"))
    epoch, seq = _redis().eval(_APPEND, 2, *_keys(), secrets.token_hex(4), entry, _ring_size())
    return _cursor(epoch, seq)


def current_cursor() -> str:
    """The head of the stream now, or "" when Redis cannot be reached (the page will resync)."""
    try:
        epoch, seq = _redis().eval(_HEAD, 2, *_keys(), secrets.token_hex(4))
    except redis.RedisError as exc:
        log.warning("live stream unavailable, the page renders without a cursor: %s", exc)
        return ""
    return _cursor(epoch, seq)


def catch_up(cursor: Any, *, incident_id: int | None = None) -> dict[str, Any]:
    """The first message of a subscription: what happened after `cursor`.

    `{"event": "live.catchup", "cursor": head, "events": [{"event", "data", "cursor"}, ...]}` with
    the events of this stream (every event, or one incident's) after the cursor, oldest first; or
    `{"event": "live.resync", "cursor": head}` when the cursor cannot be served and the client
    must refresh everything. Never raises: a broken Redis is a resync without a cursor.
    """
    match = CURSOR.match(cursor) if isinstance(cursor, str) else None
    try:
        epoch, head, served, entries = _redis().eval(
            _SINCE, 2, *_keys(), match.group(1) if match else "", int(match.group(2)) if match else 0)
    except redis.RedisError as exc:
        log.warning("live stream unavailable, the client resyncs: %s", exc)
        return {"event": "live.resync", "cursor": ""}
    if not match or not served:
        return {"event": "live.resync", "cursor": _cursor(epoch, head)}
    events = []
    for raw in entries:
        seq, _, body = raw.partition(b"\n")
        item = json.loads(body)
        if incident_id is None or item["incident"] == incident_id:
            events.append({"event": item["event"], "data": item["data"], "cursor": _cursor(epoch, int(seq))})
    return {"event": "live.catchup", "cursor": _cursor(epoch, head), "events": events}


def live_page(view):
    """Read the stream's cursor before the view queries anything (`request.live_cursor`).

    base.html puts it on `<body data-cursor>`; an event committed while the view runs is then
    after the cursor, and the page's first WebSocket message brings it.
    """
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        request.live_cursor = current_cursor()
        return view(request, *args, **kwargs)

    return wrapper
