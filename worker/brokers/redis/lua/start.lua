-- start: count a delivery and record STARTED in one call (the store is its own backend).
-- The keys span two hash tags (the queue's and the task's): fine on one Redis server;
-- on Redis Cluster this would become begin.lua then set_result.lua, two calls.
-- KEYS[1] {qmulti:<q>}:msgs          hash    mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries    hash    mid -> times begun
-- KEYS[3] qmulti:result:{<task_id>}  string  state '\n' document
-- ARGV[1] mid
-- ARGV[2] state
-- ARGV[3] document
-- ARGV[4] result ttl in milliseconds, or '0' to keep it
-- Returns the new delivery count, 0 when the message was gone already.
local count = 0
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  count = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
local value = ARGV[2] .. '\n' .. ARGV[3]
if ARGV[4] == '0' then
  redis.call('SET', KEYS[3], value)
else
  redis.call('SET', KEYS[3], value, 'PX', ARGV[4])
end
return count
