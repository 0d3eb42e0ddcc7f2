-- set_result: store a task's latest state; a final state also wakes its waiters.
-- KEYS[1] qmulti:result:{<task_id>}  string  state '\n' document, expiring with the result
-- KEYS[2] qmulti:notify:{<task_id>}  list    the final document, for blocked wait() calls
-- ARGV[1] state
-- ARGV[2] document (bytes, stored as given)
-- ARGV[3] result ttl in milliseconds, or '0' to keep it until forgotten
-- ARGV[4] '1' when the state is final (SUCCESS, FAILURE, REVOKED)
-- ARGV[5] notify list ttl in milliseconds (short: it only bridges get-then-block)
-- A waiter rotates the notify list (BRPOPLPUSH into itself), so every waiter sees it.
-- A final state stored already stays (a late or second outcome does not replace it);
-- only a REVOKED may replace a REVOKED (revoke()'s mark, then the node's verdict).
-- Returns 1 when stored, 0 when a final state was kept.
local head = redis.call('GETRANGE', KEYS[1], 0, 7)
if head == 'SUCCESS\n' or head == 'FAILURE\n' then return 0 end
if head == 'REVOKED\n' and ARGV[1] ~= 'REVOKED' then return 0 end  -- a mark may be refined
local value = ARGV[1] .. '\n' .. ARGV[2]
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], value)
else
  redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
