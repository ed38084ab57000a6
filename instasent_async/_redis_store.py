"""Rate-limit budgets shared through Redis by every process that uses one token.

Each bucket is one Redis hash holding what the whole fleet must agree on: the
current window (its id, the ``X-RateLimit-Reset`` epoch the API announced, and
its end in Redis server time), the count not yet handed out, the limit, the end
of a closure after a 429 and the holder of the probe that goes first into an
unknown or reopened window. Every change is one Lua script run atomically by
the server, on the server's own clock (``TIME``), so processes on machines with
skewed clocks still agree on when a window ends.

A process does not ask Redis for every request: it leases a block of permits,
spends them locally and asks again. In the first half of a window each process
gets at most its split of the limit (an even split between the processes that
leased lately, the remainder going round them window by window), so the first to
ask cannot starve the rest; what some did not take is free for all in the second
half, a block at most ``lease_share`` of what is left. Permits belong to the
window they were leased in; what a process did not use goes back to the window
when it closes.

Keys are ``{prefix}:rl:{{token fingerprint}:{scope}:{rate class}}`` (and the same
with ``:holders``): the token itself never reaches Redis. They expire a little
after the window they describe (the holders two windows after their last lease).

redis-py is imported only when a store is built, so the base install never needs
it (``pip install 'instasent-async[redis]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import attrs

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Lease", "Observation", "RedisBucketStore", "StoreUnavailable"]

_T = TypeVar("_T")

# Keys outlive the end of their window (or closure, or probe) by this long.
_GRACE_MS: Final = 5_000
# A window length learnt from two consecutive resets is trusted for rolling the
# window in Redis only when at least this long (a sliding window moves its reset
# with every request: those windows are re-learnt from the next answer instead).
_MIN_ROLL_SECONDS: Final = 1.0
# While another process's probe is out, ask again this often (its answer ends it).
_PROBE_POLL_MS: Final = 50


class StoreUnavailable(Exception):
    """The store did not answer in time, refused, or is unreachable (internal signal).

    The governor turns it into its header-driven fallback for the bucket; it never
    reaches the caller of a request.
    """


@attrs.frozen(slots=True)
class Observation:
    """What one answer said about its window, in the terms the store keeps.

    ``window`` identifies the window: the epoch (API server clock) at which it
    resets; ``tolerance`` is how far two ids of the same window may differ (0 for
    an absolute ``X-RateLimit-Reset``, about a second for relative ones);
    ``ends_in`` is the caller's (safely late) estimate of the seconds left until the
    reset; ``remaining``/``limit`` are the answer's counts.
    """

    window: float
    tolerance: float
    ends_in: float
    remaining: int
    limit: int | None


@attrs.frozen(slots=True)
class Lease:
    """The store's answer to a lease request.

    ``granted`` permits (0 or more) belong to window ``window`` and are void after
    ``valid_for`` seconds (its end, from now). When ``granted`` is 0, ``reason`` says
    why (``"closed"`` after a 429, ``"probing"`` while another holder's probe is out,
    ``"empty"`` when the window is spent, ``"share"`` when this holder had its split
    of the window's first half) and ``retry_in`` when asking again can succeed; with
    permits granted, a ``retry_in`` above 0 says this lease spent the window (or this
    holder's split of it) and asking before then would be refused. ``probe`` marks
    the single permit that must go first and be observed (or ended) before anyone
    else is served. ``left``/``limit`` are the bucket's counts after this lease;
    ``holders`` how many processes leased from it lately.
    """

    granted: int
    reason: Literal["granted", "probe", "closed", "probing", "empty", "share"]
    window: float | None
    valid_for: float
    retry_in: float
    left: int | None
    limit: int | None
    holders: int

    @property
    def probe(self) -> bool:
        """Whether the single granted permit is the bucket's probe."""
        return self.reason == "probe"


# -- Lua ------------------------------------------------------------------------------------
#
# Every script reads the bucket hash, decides on the server's clock and writes it
# back in one step. Fields: w (window id, seconds), e (its tolerance), dl (window
# end, server ms), ws (its start, or when it was first seen, ms), left, lim, len
# (window length, seconds), cu (closed until, ms), np (1: the next permit is a
# probe), ph/pu (probe holder and until when, ms).
# An empty string stands for "unknown".

_PRELUDE: Final = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(v)
  if v == false or v == nil or v == '' then return nil end
  return tonumber(v)
end
local s = redis.call('HMGET', key, 'w', 'e', 'dl', 'left', 'lim', 'len', 'cu', 'np', 'ph', 'pu',
  'ws')
local w, e, dl, left, lim = num(s[1]), num(s[2]) or 0, num(s[3]), num(s[4]), num(s[5])
local len, cu, np, pu = num(s[6]), num(s[7]), num(s[8]), num(s[10])
local ph, ws = s[9], num(s[11])
if ph == false or ph == '' then ph = nil end

local function str(v)
  if v == nil then return '' end
  if type(v) == 'number' and v == math.floor(v) and math.abs(v) < 1e15 then
    return string.format('%d', v)
  end
  return tostring(v)
end

local function save(grace)
  redis.call('HSET', key, 'w', str(w), 'e', str(e), 'dl', str(dl), 'left', str(left),
    'lim', str(lim), 'len', str(len), 'cu', str(cu), 'np', str(np), 'ph', ph or '',
    'pu', str(pu), 'ws', str(ws))
  local until_ms = now
  if dl and dl > until_ms then until_ms = dl end
  if cu and cu > until_ms then until_ms = cu end
  if pu and pu > until_ms then until_ms = pu end
  redis.call('PEXPIREAT', key, math.floor(until_ms + grace))
end

-- Fold what one answer said: ow (window id), oe (tolerance), ends (ms until its end),
-- rem (count left), olim (limit or nil).
local function fold(ow, oe, ends, rem, olim)
  if w == nil or ow > w + e then
    if w ~= nil then
      local span = ow - w
      if len == nil or span < len then len = span end
    end
    w, e, dl, left, ws = ow, oe, now + ends, rem, now
  elseif ow >= w - e then
    if left == nil or rem < left then left = rem end
    -- Every estimate of the end is safely late: the earliest is the closest.
    if dl == nil or now + ends < dl then dl = now + ends end
  else
    return
  end
  if olim ~= nil then lim = olim end
end

local function end_probe(holder)
  if ph == holder then ph, pu = nil, nil end
end
"""

# KEYS[2]: the bucket's holders (holder -> "last lease ms|window|permits of it").
# ARGV: grace, holder, want, share, probe_ttl_ms, min_roll, poll_ms, ended_probe (0/1),
#       [ow, oe, ends_ms, rem, lim]
_LEASE: Final = (
    _PRELUDE
    + """
local grace, holder, want = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local share, probe_ttl, min_roll = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local poll = tonumber(ARGV[7])
if ARGV[8] == '1' then end_probe(holder) end
if ARGV[9] then fold(tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]),
  tonumber(ARGV[12]), num(ARGV[13])) end

-- The holders that leased lately (this one included), and what each got of which window.
local hkey = KEYS[2]
local recent = 10000
if len then
  recent = math.max(2000, 2 * len * 1000)
elseif dl and ws then
  recent = math.max(2000, 2 * (dl - ws))
end
local seen = redis.call('HGETALL', hkey)
local names, hwin, hgot = {holder}, {}, {}
for i = 1, #seen, 2 do
  local name = seen[i]
  local last, hw, g = string.match(seen[i + 1], '^([^|]*)|([^|]*)|([^|]*)$')
  if name == holder or (last and now - tonumber(last) <= recent) then
    if name ~= holder then table.insert(names, name) end
    hwin[name], hgot[name] = num(hw), tonumber(g) or 0
  else
    redis.call('HDEL', hkey, name)
  end
end
local active = #names

-- Permits of the current window a holder already has.
local function got(name)
  local hw = hwin[name]
  if hw ~= nil and w ~= nil and math.abs(hw - w) <= e + 1e-6 then return hgot[name] end
  return 0
end

local function answer(n, reason, retry)
  save(grace)
  redis.call('HSET', hkey, holder, now .. '|' .. str(w) .. '|' .. (got(holder) + n))
  redis.call('PEXPIRE', hkey, math.floor(recent + grace))
  local valid = 0
  if dl then valid = dl - now end
  return {n, reason, str(w), valid, retry, str(left), str(lim), active}
end

if cu then
  if now < cu then return answer(0, 'closed', cu - now) end
  cu, np = nil, 1
end
if ph and pu and now < pu then return answer(0, 'probing', math.min(poll, pu - now)) end
ph, pu = nil, nil
if dl and now >= dl then
  if len and len >= min_roll and lim and w then
    local k = math.floor((now - dl) / (len * 1000)) + 1
    w, dl, left = w + k * len, dl + k * len * 1000, lim
    ws = dl - len * 1000
  else
    -- Its length is unknown: a probe learns the next window (and, from the two
    -- ids, the length).
    left, np = nil, 1
  end
end
if np or w == nil or left == nil then
  np, ph, pu = nil, holder, now + probe_ttl
  return answer(1, 'probe', 0)
end
if left <= 0 then return answer(0, 'empty', dl - now) end

-- In a window's first half each holder gets at most its split of the limit: an
-- even split, the remainder one each to holders in an order that turns every
-- window. Fair when every holder wants more; what some did not take is free for
-- all in the second half.
local half = ws and dl and ws + (dl - ws) / 2
local cap, unmet = nil, 0
if lim and half and now < half then
  table.sort(names)
  local base, extra = math.floor(lim / active), lim % active
  local turn = math.floor(w / (len or 1) + 0.5)
  for i, name in ipairs(names) do
    local split = base
    if (i + turn) % active < extra then split = split + 1 end
    local open = math.max(0, split - got(name))
    if name == holder then cap = open else unmet = unmet + open end
  end
end
-- When to ask again after this answer: a call before then could only be refused.
local function later()
  if left > unmet then return half - now end
  return dl - now
end
if cap and cap < 1 then return answer(0, 'share', later()) end
-- The holder's split in the first half; later at most a share of what is left
-- (one at least); never more than wanted.
local n = cap
if n == nil then
  n = math.floor(left * share)
  if n < 1 then n = 1 end
end
if n > left then n = left end
if n > want then n = want end
left = left - n
local retry = 0
if left <= 0 then
  retry = dl - now
elseif cap and n >= cap then
  retry = later()
end
return answer(n, 'granted', retry)
"""
)

# ARGV: grace, holder, ended_probe (0/1), [ow, oe, ends_ms, rem, lim]
_OBSERVE: Final = (
    _PRELUDE
    + """
local grace, holder = tonumber(ARGV[1]), ARGV[2]
if ARGV[3] == '1' then end_probe(holder) end
if ARGV[4] then fold(tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7]), num(ARGV[8])) end
save(grace)
return str(left)
"""
)

# ARGV: grace, holder, delay_ms, [ow]: a 429 closes the bucket; the next permit probes.
_CLOSE: Final = (
    _PRELUDE
    + """
local grace, holder, delay = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
end_probe(holder)
local ow = num(ARGV[4])
if ow ~= nil and w ~= nil and ow >= w - e and ow <= w + e then left = 0 end
if cu == nil or now + delay > cu then cu = now + delay end
np = 1
save(grace)
return cu - now
"""
)

# ARGV: grace, ow, n: unused permits of window ow go back to it while it lasts.
_GIVE_BACK: Final = (
    _PRELUDE
    + """
local grace, ow, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if w == nil or left == nil or dl == nil or now >= dl or ow < w - e or ow > w + e then
  return 0
end
left = left + n
if lim and left > lim then left = lim end
save(grace)
return n
"""
)


_SHA1: Final = {
    script: hashlib.sha1(script.encode()).hexdigest()
    for script in (_LEASE, _OBSERVE, _CLOSE, _GIVE_BACK)
}


def _import_redis() -> Any:
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "RedisBucketStore needs redis-py: pip install 'instasent-async[redis]'"
        ) from exc
    return redis_asyncio


def _check_url(url: str, options: dict[str, Any]) -> None:
    """What redis-py lets through silently but cannot work: a database that is not a
    number, port 0, a unix URL without a path."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix":
        if not options.get("path"):
            raise ConfigurationError("RedisBucketStore: a unix:// URL needs a socket path")
        return
    path = urllib.parse.unquote(parsed.path).strip("/")
    if path and not path.isdigit():
        raise ConfigurationError(
            f"RedisBucketStore: the database in the URL must be a number, got {path!r}"
        )
    if parsed.port == 0:
        raise ConfigurationError("RedisBucketStore: port 0 in the Redis URL")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_float(value: Any) -> float | None:
    text = _text(value)
    return float(text) if text else None


def _opt_int(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text else None


def _obs_args(obs: Observation | None) -> list[str]:
    if obs is None:
        return []
    return [
        repr(obs.window),
        repr(obs.tolerance),
        str(max(0, math.ceil(obs.ends_in * 1000))),
        str(obs.remaining),
        "" if obs.limit is None else str(obs.limit),
    ]


class RedisBucketStore:
    """Rate-limit budgets shared through Redis by every process on one token.

    Pass it to the governor::

        store = RedisBucketStore("redis://localhost:6379/0", prefix="instasent")
        client = Instasent(token, rate_limit=RateLimitGovernor(store=store))

    Every process (or pod) built this way shares each bucket's window, count
    left, closure after a 429 and probe through Redis, leasing small blocks of
    permits instead of asking once per request. When Redis is unreachable, slow
    or restarted the governor falls back to its header-driven mode for the
    affected bucket and returns to the store once it answers again.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (redis-py syntax).
        prefix: first part of every key (keys also hold the token fingerprint,
            never the token).
        timeout: seconds one store call may take before the governor gives up on
            it and falls back (connecting included).
        lease_share: in the second half of a window (when the first half's
            splits are lifted), the largest share of what is left one lease takes
            (one permit at least).
        max_lease: the most permits one lease takes.
        probe_ttl: seconds another process waits for a probe's answer before it
            sends a probe of its own (the holder may have died).

    Raises:
        ConfigurationError: redis-py is not installed, the URL cannot be used
            (wrong scheme, bad port or database) or an option is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "instasent",
        timeout: float = 0.5,
        lease_share: float = 0.2,
        max_lease: int = 16,
        probe_ttl: float = 5.0,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise ConfigurationError("RedisBucketStore needs a redis:// URL")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("RedisBucketStore prefix must be a non-empty string")
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 60):
            raise ConfigurationError("RedisBucketStore timeout must be in (0, 60] seconds")
        if not (isinstance(lease_share, (int, float)) and 0 < lease_share <= 1):
            raise ConfigurationError("RedisBucketStore lease_share must be in (0, 1]")
        if not (isinstance(max_lease, int) and max_lease >= 1):
            raise ConfigurationError("RedisBucketStore max_lease must be an int >= 1")
        if not (isinstance(probe_ttl, (int, float)) and probe_ttl > 0):
            raise ConfigurationError("RedisBucketStore probe_ttl must be > 0 seconds")
        redis_asyncio = _import_redis()
        try:
            options = redis_asyncio.connection.parse_url(url)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"RedisBucketStore: unusable Redis URL: {exc}") from exc
        _check_url(url, options)
        self._url = url
        self._prefix = prefix
        self._timeout = float(timeout)
        self._share = float(lease_share)
        self._max_lease = max_lease
        self._probe_ttl_ms = max(1, round(probe_ttl * 1000))
        # Identifies this store's leases and probes in Redis (random, per instance).
        self.holder = uuid.uuid4().hex[:16]
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Scripts this client already sent whole (then called by their SHA1).
        self._loaded: set[str] = set()
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"<RedisBucketStore prefix={self._prefix!r}>"

    @property
    def prefix(self) -> str:
        """The first part of every key this store writes."""
        return self._prefix

    @property
    def timeout(self) -> float:
        """Seconds one store call may take."""
        return self._timeout

    def bucket_name(self, fingerprint: str, scope: str, rate_class: str) -> str:
        """The Redis key of a bucket (the token fingerprint, never the token).

        The braces are a Redis Cluster hash tag: a bucket's keys share one slot.
        """
        return f"{self._prefix}:rl:{{{fingerprint}:{scope}:{rate_class}}}"

    # -- connection ---------------------------------------------------------------------

    def _redis(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # redis-py connections belong to the loop that opened them.
            redis_asyncio = _import_redis()
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = redis_asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
            self._loop = loop
            self._loaded = set()
        return self._client

    async def _bounded(self, make: Callable[[], Awaitable[_T]]) -> _T:
        """Run one store call within ``timeout``; any failure is ``StoreUnavailable``."""
        from redis.exceptions import RedisError

        self.round_trips += 1
        try:
            return await asyncio.wait_for(make(), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _run(self, script: str, keys: tuple[str, ...], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        client = self._redis()
        loaded = self._loaded

        async def call() -> Any:
            if script in loaded:
                try:
                    return await client.evalsha(_SHA1[script], len(keys), *keys, *args)
                except NoScriptError:
                    # A restarted or flushed server forgot the script: send it whole.
                    self.round_trips += 1
            result = await client.eval(script, len(keys), *keys, *args)
            loaded.add(script)
            return result

        return await self._bounded(call)

    # -- the scripts --------------------------------------------------------------------

    async def lease(
        self,
        bucket: str,
        want: int,
        observed: Observation | None = None,
        *,
        ended_probe: bool = False,
    ) -> Lease:
        """Lease up to ``want`` permits of ``bucket``'s current window.

        ``observed`` (the freshest answer this process saw) is folded in first, in
        the same atomic step, after ending this holder's probe if ``ended_probe``.
        Grants a single probe when the window is unknown or a closure just ended.
        In the first half of a window (or of what was left of it when the store
        first saw it) each holder gets at most its split of the limit between the
        processes that leased lately; later a block is at most ``lease_share`` of
        what is left (one permit at least).

        Raises:
            StoreUnavailable: Redis did not answer within ``timeout``.
        """
        want = max(1, min(int(want), self._max_lease))
        args = [
            _GRACE_MS,
            self.holder,
            want,
            repr(self._share),
            self._probe_ttl_ms,
            repr(_MIN_ROLL_SECONDS),
            _PROBE_POLL_MS,
            "1" if ended_probe else "0",
            *_obs_args(observed),
        ]
        raw = await self._run(_LEASE, (bucket, bucket + ":holders"), args)
        granted, reason, window, valid_ms, retry_ms, left, limit, holders = raw
        return Lease(
            granted=int(granted),
            reason=_text(reason),  # type: ignore[arg-type]
            window=_opt_float(window),
            valid_for=max(0, int(valid_ms)) / 1000,
            retry_in=max(0, int(retry_ms)) / 1000,
            left=_opt_int(left),
            limit=_opt_int(limit),
            holders=int(holders),
        )

    async def observe(
        self, bucket: str, observed: Observation | None, *, ended_probe: bool = False
    ) -> int | None:
        """Fold one answer into ``bucket``; with ``ended_probe`` also end this holder's probe.

        A newer window replaces the stored one (learning the window length from
        the two ids); in the same window the lowest count wins; an older window's
        answer changes nothing. Returns the count left.

        Raises:
            StoreUnavailable: Redis did not answer within ``timeout``.
        """
        args = [_GRACE_MS, self.holder, "1" if ended_probe else "0", *_obs_args(observed)]
        return _opt_int(await self._run(_OBSERVE, (bucket,), args))

    async def close_bucket(self, bucket: str, delay: float, window: float | None = None) -> float:
        """A 429: close ``bucket`` for ``delay`` seconds (never shorter than a closure
        already in place); the first permit after it is a probe. ``window`` is the id of
        the window the 429 announced: that window has nothing left. Returns the
        seconds until the bucket opens again.

        Raises:
            StoreUnavailable: Redis did not answer within ``timeout``.
        """
        args: list[Any] = [_GRACE_MS, self.holder, max(0, math.ceil(delay * 1000))]
        if window is not None:
            args.append(repr(window))
        return int(await self._run(_CLOSE, (bucket,), args)) / 1000

    async def give_back(self, bucket: str, window: float, count: int) -> int:
        """Return ``count`` unused permits to window ``window`` (nothing once it ended).

        Returns how many went back.

        Raises:
            StoreUnavailable: Redis did not answer within ``timeout``.
        """
        if count <= 0:
            return 0
        return int(await self._run(_GIVE_BACK, (bucket,), [_GRACE_MS, repr(window), int(count)]))

    async def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            StoreUnavailable: it did not within ``timeout``.
        """
        client = self._redis()
        await self._bounded(client.ping)

    async def aclose(self) -> None:
        """Close the connections to Redis (the store can be used again afterwards)."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            # Closing a broken connection must not fail a client's close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), self._timeout)
