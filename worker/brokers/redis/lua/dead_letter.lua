-- dead_letter: move a leased message out of circulation into the dead-letter queue,
-- only while the caller's lease is its current one.
-- KEYS[1] {qmulti:<q>}:msgs         hash  mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries   hash  mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased       hash  mid -> lease (its first 22 characters: token)
-- KEYS[4] {qmulti:<q>}:dead         zset  mid -> dead-lettered at (microseconds)
-- KEYS[5] {qmulti:<q>}:dead:reason  hash  mid -> reason
-- KEYS[6] {qmulti:<q>}:dead:body    hash  mid -> body
-- ARGV[1] mid
-- ARGV[2] the lease token the caller holds
-- ARGV[3] reason
-- Returns 1 when moved, 0 when the lease was lost (or the message is gone).
local lease = redis.call('HGET', KEYS[3], ARGV[1])
if not lease or string.sub(lease, 1, 22) ~= ARGV[2] then return 0 end
local body = redis.call('HGET', KEYS[1], ARGV[1])
local t = redis.call('TIME')
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[6], ARGV[1], body or '')
return 1
