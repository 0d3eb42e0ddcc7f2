-- heartbeat: record that a node is alive, stamped with the server clock so that nodes
-- on hosts with skewed clocks still agree on who has expired.
-- KEYS[1] {qmulti}:nodes     zset  node_id -> last heartbeat (unix seconds)
-- KEYS[2] {qmulti}:nodeinfo  hash  node_id -> info (JSON)
-- KEYS[3] {qmulti}:reaps     hash  node_id -> times judged dead (reap_nodes counts)
-- ARGV[1] node_id
-- ARGV[2] info (JSON)
-- Returns how many times the node has been judged dead. The node compares it with the
-- count it knew: a count, not a flag, so that a heartbeat whose reply was lost (or one
-- delivered late, after a network cut) cannot swallow the news.
local t = redis.call('TIME')
local now = string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
