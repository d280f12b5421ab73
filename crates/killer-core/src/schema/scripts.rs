//! The Lua scripts, each next to what it promises: writes that must go
//! together run in one script, scored by the Redis server's clock.

/// Records a cancel: durable record, status and audit record in one atomic
/// step, scored by the Redis server's clock so that every watcher's poll
/// cursor compares times from one clock. The PUBLISH that wakes the
/// watchers is sent after it, on its own: a refused PUBLISH (an ACL without
/// the channel) must not undo or hide a cancel the poll will apply.
///
/// A repeated request for a jid already known adds no audit record: it
/// counts itself (`requests`) and keeps who asked last (`last_by`,
/// `last_reason`, `last_at`) in the status, so a thousand repeats cannot
/// push everyone else out of the capped trail. The durable record holds at
/// most ARGV[6] requests: past it, the oldest are dropped (with their
/// status, if still `requested`).
/// KEYS[1] cancels zset, KEYS[2] status hash, KEYS[3] history list;
/// ARGV[1] jid, ARGV[2] ttl ms, ARGV[3] by, ARGV[4] reason, ARGV[5] history
/// cap, ARGV[6] cap of the durable record, ARGV[7] status key prefix.
/// Returns {status after the call, requests dropped to stay under the cap}.
pub(crate) const CANCEL_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local dropped = 0
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    local key = ARGV[7] .. old
    if redis.call('HGET', key, 'state') == 'requested' then redis.call('DEL', key) end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  dropped = over
end
redis.call('PEXPIRE', KEYS[1], ttl)
local state = redis.call('HGET', KEYS[2], 'state')
if state then
  redis.call('HINCRBY', KEYS[2], 'requests', 1)
  redis.call('HSET', KEYS[2], 'last_by', ARGV[3], 'last_reason', ARGV[4], 'last_at', now)
  return {state, dropped}
end
state = 'requested'
redis.call('HSET', KEYS[2], 'state', state, 'requested_at', now, 'by', ARGV[3], 'reason', ARGV[4], 'requests', 1)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('LPUSH', KEYS[3], cjson.encode({jid = ARGV[1], by = ARGV[3], reason = ARGV[4], at = now, state = state}))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[3], ttl)
return {state, dropped}
"#;

/// Grants a restart slot only if enough *other* processes are alive, not
/// quiet and not recycling, and fewer than the maximum restarts are in
/// progress — in one atomic step, so two processes crossing the limit in the
/// same millisecond cannot both go.
/// KEYS[1] Sidekiq's process set, KEYS[2] restart slots. ARGV[1] hostname,
/// ARGV[2] pid, ARGV[3] min live others, ARGV[4] max concurrent restarts,
/// ARGV[5] slot ttl ms, ARGV[6] heartbeat freshness (s).
/// Returns {1|0, explanation}.
pub(crate) const PERMIT_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[2], me) then return {1, 'already holding a slot'} end
local live = 0
for _, identity in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', identity, 'info', 'beat', 'quiet')
  if f[1] and f[2] then
    local ok, info = pcall(cjson.decode, f[1])
    if ok and type(info) == 'table' then
      local who = tostring(info['hostname']) .. ':' .. tostring(info['pid'])
      local fresh = (now_ms / 1000 - tonumber(f[2])) < tonumber(ARGV[6])
      if who ~= me and fresh and f[3] ~= 'true' and not redis.call('ZSCORE', KEYS[2], who) then
        live = live + 1
      end
    end
  end
end
if live < tonumber(ARGV[3]) then
  return {0, 'only ' .. live .. ' other live process(es) not quiet or recycling; min_live_processes is ' .. ARGV[3]}
end
local taken = redis.call('ZCARD', KEYS[2])
if taken >= tonumber(ARGV[4]) then
  return {0, taken .. ' restart(s) already in progress; max_concurrent_restarts is ' .. ARGV[4]}
end
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[5]), me)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
return {1, 'granted'}
"#;

/// KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. 1 if still ours (renewed).
pub(crate) const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// KEYS[1] lease; ARGV[1] token. Deletes the key only if it is still ours.
pub(crate) const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Switches a class off until now + ARGV[2] ms, or (ARGV[2] = -1) back on:
/// the switches hash (its expired entries dropped, its TTL the longest
/// switch), the marker in the durable record that makes every watcher's
/// poll reload it, and an audit record. At most ARGV[6] classes.
/// KEYS[1] switches hash, KEYS[2] cancels zset, KEYS[3] history list;
/// ARGV[1] class, ARGV[2] duration ms or -1, ARGV[3] by, ARGV[4] reason,
/// ARGV[5] history cap, ARGV[6] switch cap, ARGV[7] marker, ARGV[8] ttl ms
/// of the durable record and the history.
/// Returns {until ms (0 when switched back on), 1 if the class was
/// switched off before the call, else 0}, or an error reply past the cap.
pub(crate) const SWITCH_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dur = tonumber(ARGV[2])
local ttl = tonumber(ARGV[8])
local was = 0
local longest = 0
local live = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local ok, s = pcall(cjson.decode, flat[i + 1])
  local left = (ok and type(s) == 'table' and tonumber(s['until']) or 0) - now
  if left <= 0 then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    if flat[i] == ARGV[1] then was = 1 elseif left > longest then longest = left end
    live = live + 1
  end
end
local untl = 0
if dur >= 0 then
  if was == 0 and live >= tonumber(ARGV[6]) then
    return redis.error_reply('KILLER_CAP ' .. ARGV[6] .. ' classes are switched off already')
  end
  untl = now + dur
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({['until'] = untl, at = now, by = ARGV[3], reason = ARGV[4]}))
  if dur > longest then longest = dur end
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if longest > 0 then redis.call('PEXPIRE', KEYS[1], longest) else redis.call('DEL', KEYS[1]) end
redis.call('ZADD', KEYS[2], now, ARGV[7])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
local kind = 'resume'
if dur >= 0 then kind = 'switch' end
redis.call('LPUSH', KEYS[3], cjson.encode({kind = kind, class = ARGV[1], by = ARGV[3], reason = ARGV[4], at = now, ['until'] = untl}))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[3], ttl)
return {untl, was}
"#;
