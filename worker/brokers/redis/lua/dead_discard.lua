-- dead_discard: delete one dead-lettered message for good.
-- KEYS[1] {qmulti:<q>}:dead         zset  mid -> dead-lettered at (microseconds)
-- KEYS[2] {qmulti:<q>}:dead:reason  hash  mid -> reason
-- KEYS[3] {qmulti:<q>}:dead:body    hash  mid -> body
-- ARGV[1] mid
-- Returns 1 when deleted, 0 when it was not dead-lettered (already retried or discarded).
local gone = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return gone
