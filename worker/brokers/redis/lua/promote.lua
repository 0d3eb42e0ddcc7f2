-- promote: move scheduled messages whose eta has passed to the tail of their queue
-- (claim does the same inline; this serves stats, so counts match what claim sees).
-- KEYS[1] {qmulti:<q>}:scheduled  zset  mid -> eta
-- KEYS[2] {qmulti:<q>}:ready      list  mids
-- KEYS[3] {qmulti:<q>}:wake       list  wake-up token
-- Returns how many moved.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
if #due == 0 then return 0 end
redis.call('RPUSH', KEYS[2], unpack(due))
redis.call('ZREM', KEYS[1], unpack(due))
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return #due
