-- set_progress: store a task's own interim state (update_state), unless a final state
-- is already there: a PROGRESS written late must never hide SUCCESS or REVOKED.
-- KEYS[1] qmulti:result:{<task_id>}  string  state '\n' document, expiring with the result
-- ARGV[1] state (not final)
-- ARGV[2] document (bytes, stored as given)
-- ARGV[3] result ttl in milliseconds, or '0' to keep it until forgotten
-- Returns 1 when stored, 0 when a final state was kept.
local old = redis.call('GET', KEYS[1])
if old then
  local state = string.match(old, '^([^\n]*)')
  if state == 'SUCCESS' or state == 'FAILURE' or state == 'REVOKED' then
    return 0
  end
end
local value = ARGV[1] .. '\n' .. ARGV[2]
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], value)
else
  redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
end
return 1
