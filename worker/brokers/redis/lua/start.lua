-- start: count a delivery and record STARTED in one call (the store is its own backend),
-- only while the caller's lease is current, and counted once per lease (begin.lua's
-- rule). A final result already stored stays: STARTED never replaces an outcome.
-- The keys span two hash tags (the queue's and the task's): fine on one Redis server;
-- on Redis Cluster this would become begin.lua then set_result.lua, two calls.
-- KEYS[1] {qmulti:<q>}:deliveries    hash    mid -> times begun
-- KEYS[2] {qmulti:<q>}:leased        hash    mid -> lease (token, begun flag at 23, owner)
-- KEYS[3] qmulti:result:{<task_id>}  string  state '\n' document
-- ARGV[1] mid
-- ARGV[2] the lease token the caller holds
-- ARGV[3] state
-- ARGV[4] document
-- ARGV[5] result ttl in milliseconds, or '0' to keep it
-- Returns the delivery count, 0 when the lease is lost, or -1 when the stored result is
-- REVOKED (revoke() before the task began: it must not run); in both, nothing is written.
-- Checking the mark here saves the node a read per task.
local lease = redis.call('HGET', KEYS[2], ARGV[1])
if not lease or string.sub(lease, 1, 22) ~= ARGV[2] then return 0 end
local head = redis.call('GETRANGE', KEYS[3], 0, 7)
if head == 'REVOKED\n' then return -1 end
local count
if string.sub(lease, 23, 23) == '+' then
  count = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '1')
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '+' .. string.sub(lease, 24))
  count = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
if head ~= 'SUCCESS\n' and head ~= 'FAILURE\n' then
  local value = ARGV[3] .. '\n' .. ARGV[4]
  if ARGV[5] == '0' then
    redis.call('SET', KEYS[3], value)
  else
    redis.call('SET', KEYS[3], value, 'PX', ARGV[5])
  end
end
return count
