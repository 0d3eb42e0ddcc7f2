-- heartbeat: record that a node is alive, stamped with the server clock so that nodes
-- on hosts with skewed clocks still agree on who has expired.
-- KEYS[1] {qmulti}:nodes     zset  node_id -> last heartbeat (unix seconds)
-- KEYS[2] {qmulti}:nodeinfo  hash  node_id -> info (JSON)
-- ARGV[1] node_id
-- ARGV[2] info (JSON)
-- Returns 1 when the node was registered already, 0 when it was not: new, or judged
-- dead since its last heartbeat (reap_nodes removed it), which is how a node learns.
local t = redis.call('TIME')
local now = string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1 - added
