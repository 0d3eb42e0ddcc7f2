-- finish: store a task's outcome and ack its message atomically (the store is its own
-- backend), so a result is never lost and a message never removed without its result.
-- The outcome is stored unless a final one is already (a task may run twice after its
-- node stalled; the first outcome stands; a REVOKED mark may be refined). The ack happens only under the caller's
-- current lease: a stale node's finish leaves the new holder's lease alone.
-- The keys span the queue's hash tag and the task's: fine on one Redis server; on Redis
-- Cluster this would become set_result.lua then ack.lua, in that order.
-- KEYS[1] {qmulti:<q>}:msgs          hash    mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries    hash    mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased        hash    mid -> lease (its first 22 characters: token)
-- KEYS[4] qmulti:result:{<task_id>}  string  state '\n' document
-- KEYS[5] qmulti:notify:{<task_id>}  list    the final document, for wait()
-- ARGV[1] mid
-- ARGV[2] the lease token the caller holds
-- ARGV[3] state
-- ARGV[4] document
-- ARGV[5] result ttl in milliseconds, or '0' to keep it
-- ARGV[6] '1' when the state is final
-- ARGV[7] notify list ttl in milliseconds
-- Returns 1 when the message was acked, 0 when the lease was lost.
local head = redis.call('GETRANGE', KEYS[4], 0, 7)
-- (A REVOKED mark, stored by revoke(), may be replaced by the node's own REVOKED.)
if (head ~= 'SUCCESS\n' and head ~= 'FAILURE\n' and head ~= 'REVOKED\n')
    or (head == 'REVOKED\n' and ARGV[3] == 'REVOKED') then
  local value = ARGV[3] .. '\n' .. ARGV[4]
  if ARGV[5] == '0' then
    redis.call('SET', KEYS[4], value)
  else
    redis.call('SET', KEYS[4], value, 'PX', ARGV[5])
  end
  if ARGV[6] == '1' then
    redis.call('DEL', KEYS[5])
    redis.call('RPUSH', KEYS[5], ARGV[4])
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
  end
end
local lease = redis.call('HGET', KEYS[3], ARGV[1])
if lease and string.sub(lease, 1, 22) == ARGV[2] then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
