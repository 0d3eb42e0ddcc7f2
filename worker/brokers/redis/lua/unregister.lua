-- unregister: forget a node that stopped cleanly.
-- KEYS[1] {qmulti}:nodes     zset  node_id -> last heartbeat
-- KEYS[2] {qmulti}:nodeinfo  hash  node_id -> info
-- KEYS[3] {qmulti}:reaps     hash  node_id -> times judged dead
-- KEYS[4] {qmulti}:reaped_at zset node_id -> last judged dead at (seconds)
-- ARGV[1] node_id
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
