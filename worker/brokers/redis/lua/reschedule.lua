-- reschedule: replace a leased message by its retry in the same queue, in one step.
-- KEYS[1] {qmulti:<q>}:msgs        hash  mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased      hash  mid -> lease
-- KEYS[4] {qmulti:<q>}:ready       list  mids
-- KEYS[5] {qmulti:<q>}:scheduled   zset  mid -> eta
-- KEYS[6] {qmulti:<q>}:wake        list  wake-up token
-- ARGV[1] old mid
-- ARGV[2] new mid
-- ARGV[3] new body
-- ARGV[4] eta in unix seconds, or '' for none
-- Returns 1 when the new message is ready now, 0 when scheduled.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local eta = tonumber(ARGV[4])
local ready = 1
if eta ~= nil and eta > now then
  redis.call('ZADD', KEYS[5], eta, ARGV[2])
  ready = 0
else
  redis.call('RPUSH', KEYS[4], ARGV[2])
end
if redis.call('LLEN', KEYS[6]) == 0 then
  redis.call('RPUSH', KEYS[6], '1')
end
return ready
