-- finish: store a task's outcome and ack its message atomically (the store is its own
-- backend), so a result is never lost and a message never removed without its result.
-- The keys span the queue's hash tag and the task's: fine on one Redis server; on Redis
-- Cluster this would become set_result.lua then ack.lua, in that order.
-- KEYS[1] {qmulti:<q>}:msgs          hash    mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries    hash    mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased        hash    mid -> lease
-- KEYS[4] qmulti:result:{<task_id>}  string  state '\n' document
-- KEYS[5] qmulti:notify:{<task_id>}  list    the final document, for wait()
-- ARGV[1] mid
-- ARGV[2] state
-- ARGV[3] document
-- ARGV[4] result ttl in milliseconds, or '0' to keep it
-- ARGV[5] '1' when the state is final
-- ARGV[6] notify list ttl in milliseconds
-- Returns 1 when the message was acked, 0 when it was no longer leased.
local value = ARGV[2] .. '\n' .. ARGV[3]
if ARGV[4] == '0' then
  redis.call('SET', KEYS[4], value)
else
  redis.call('SET', KEYS[4], value, 'PX', ARGV[4])
end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[5])
  redis.call('RPUSH', KEYS[5], ARGV[3])
  redis.call('PEXPIRE', KEYS[5], ARGV[6])
end
if redis.call('HDEL', KEYS[3], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
