-- set_started: STARTED for a task about to run whose message another broker holds
-- (an amqp:// broker with this Redis as its backend), with revoke()'s mark read in the
-- same call: one round trip per task, not a read and then a write.
-- KEYS[1] qmulti:result:{<task_id>}  string  state '\n' document
-- ARGV[1] document
-- ARGV[2] result ttl in milliseconds, or '0' to keep it
-- Returns -1 when the stored state is REVOKED (the task must not run; nothing written),
-- 0 when a final state is kept (STARTED never replaces an outcome), 1 when stored.
local head = redis.call('GETRANGE', KEYS[1], 0, 7)
if head == 'REVOKED\n' then return -1 end
if head == 'SUCCESS\n' or head == 'FAILURE\n' then return 0 end
local value = 'STARTED\n' .. ARGV[1]
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], value)
else
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
end
return 1
