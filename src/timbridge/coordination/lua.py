"""The Lua scripts of the Redis coordinator: every hand-over of a conversation is one script, so
that ordering cannot break between two commands (`coordination.redis` explains the protocol).
Each names its KEYS and ARGV; the key names come from `coordination.keys`."""

from __future__ import annotations

__all__ = ["DONE", "FINISH", "HEARTBEAT", "RATE", "SUBMIT"]

# KEYS: seen, active, ready, depth, then one mailbox per job. ARGV: dedupe ttl, job count, then
# (conversation, job) pairs. Dedupes, appends, and schedules each conversation not yet active.
SUBMIT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
local n = tonumber(ARGV[2])
for i = 1, n do
  local conversation = ARGV[1 + 2 * i]
  redis.call('RPUSH', KEYS[4 + i], ARGV[2 + 2 * i])
  redis.call('INCR', KEYS[4])
  if redis.call('SADD', KEYS[2], conversation) == 1 then
    redis.call('XADD', KEYS[3], '*', 'c', conversation)
  end
end
return 1
"""

# KEYS: mbox, active, ready. ARGV: group, entry id, conversation, hand_back ('1' | '0').
FINISH = """
if ARGV[4] == '0' and redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('XADD', KEYS[3], '*', 'c', ARGV[3])
else
  redis.call('SREM', KEYS[2], ARGV[3])
end
return 1
"""

# KEYS: mbox, depth. ARGV: the job as read. Pops only the job that was run.
DONE = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  redis.call('DECR', KEYS[2])
  return 1
end
return 0
"""

# KEYS: ready. ARGV: group, consumer, entry ids... Renews the idle time of entries still ours.
HEARTBEAT = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS: window zset, told flag. ARGV: window ms, limit, unique member.
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0, 0}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local retry = math.max(1, oldest + window - now)
local told = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', retry) then told = 1 end
return {0, retry, told}
"""
