-- dead_retry: put one dead-lettered message back at the tail of its queue, once.
-- KEYS[1] {qmulti:<q>}:dead         zset  mid -> dead-lettered at (microseconds)
-- KEYS[2] {qmulti:<q>}:dead:reason  hash  mid -> reason
-- KEYS[3] {qmulti:<q>}:dead:body    hash  mid -> body
-- KEYS[4] {qmulti:<q>}:msgs         hash  mid -> body
-- KEYS[5] {qmulti:<q>}:deliveries   hash  mid -> times begun
-- KEYS[6] {qmulti:<q>}:ready        list  mids, head = next to claim
-- KEYS[7] {qmulti:<q>}:wake         list  at most one token: "ready may be non-empty"
-- ARGV[1] mid
-- Returns 1 when republished, 0 when it was no longer dead-lettered (a second click, or
-- another dashboard did it first): so a retry publishes the message once.
-- Its delivery count starts again at 0, or the next claim would dead-letter it at once.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local body = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if not body or redis.call('HSETNX', KEYS[4], ARGV[1], body) == 0 then return 0 end
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('RPUSH', KEYS[6], ARGV[1])
if redis.call('LLEN', KEYS[7]) == 0 then
  redis.call('RPUSH', KEYS[7], '1')
end
return 1
