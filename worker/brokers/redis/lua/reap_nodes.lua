-- reap_nodes: judge nodes whose heartbeat is older than the expiry dead, and list every
-- node whose leases still have to be given back. A dead node moves to the reaping set
-- with the time of the judgement; its leases claimed up to then are given back queue by
-- queue (give_back), and only then forget_reaped drops it. So a caller that dies half
-- way leaves the work for the next caller instead of losing those leases.
-- KEYS[1] {qmulti}:nodes     zset  node_id -> last heartbeat (unix seconds)
-- KEYS[2] {qmulti}:nodeinfo  hash  node_id -> info
-- KEYS[3] {qmulti}:reaping   zset  node_id -> judged dead at (microseconds)
-- KEYS[4] {qmulti}:reaps     hash  node_id -> times judged dead (what its heartbeat says)
-- KEYS[5] {qmulti}:reaped_at zset node_id -> last judged dead at (seconds)
-- ARGV[1] expiry in seconds
-- ARGV[2] seconds a dead node's reaps count is kept (KEEP_REAPS): node ids name one
--         process life, so the count of one that never came back would stay for good
-- Returns {node_id1, judged_us1, node_id2, ...}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cutoff = now_us / 1000000 - tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.6f', cutoff))
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('HDEL', KEYS[2], node)
  redis.call('ZADD', KEYS[3], now_us, node)
  redis.call('HINCRBY', KEYS[4], node, 1)
  redis.call('ZADD', KEYS[5], string.format('%.6f', now_us / 1000000), node)
end
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf',
                       '(' .. string.format('%.6f', now_us / 1000000 - tonumber(ARGV[2])))
for _, node in ipairs(old) do
  if not redis.call('ZSCORE', KEYS[1], node) then  -- back and alive: its count stays
    redis.call('HDEL', KEYS[4], node)
  end
  redis.call('ZREM', KEYS[5], node)
end
local out = {}
local all = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = string.format('%016d', tonumber(all[i + 1]))
end
return out
