-- reschedule: replace a leased message by its retry in one step, only while the caller's
-- lease is current. A re-sent reschedule finds the lease gone and publishes nothing, so
-- the retry exists once. The retry may go to another queue: the keys then span two hash
-- tags, fine on one Redis server (as start.lua and finish.lua).
-- KEYS[1] {qmulti:<q>}:msgs         hash  mid -> body (the leased message's queue)
-- KEYS[2] {qmulti:<q>}:deliveries   hash  mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased       hash  mid -> lease (its first 22 characters: token)
-- KEYS[4] {qmulti:<q2>}:msgs        hash  mid -> body (the retry's queue, maybe the same)
-- KEYS[5] {qmulti:<q2>}:ready       list  mids
-- KEYS[6] {qmulti:<q2>}:scheduled   zset  mid -> eta
-- KEYS[7] {qmulti:<q2>}:wake        list  wake-up token
-- ARGV[1] old mid
-- ARGV[2] the lease token the caller holds
-- ARGV[3] new mid
-- ARGV[4] new body
-- ARGV[5] eta in unix seconds, or '' for none
-- Returns 1 when the new message is ready now, 0 when scheduled, -1 when the lease was
-- lost (nothing changed).
local lease = redis.call('HGET', KEYS[3], ARGV[1])
if not lease or string.sub(lease, 1, 22) ~= ARGV[2] then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local ready = 1
if redis.call('HSETNX', KEYS[4], ARGV[3], ARGV[4]) == 1 then
  local eta = tonumber(ARGV[5])
  if eta ~= nil and eta > now then
    redis.call('ZADD', KEYS[6], eta, ARGV[3])
    ready = 0
  else
    redis.call('RPUSH', KEYS[5], ARGV[3])
  end
end
if redis.call('LLEN', KEYS[7]) == 0 then
  redis.call('RPUSH', KEYS[7], '1')
end
return ready
