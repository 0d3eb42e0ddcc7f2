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
-- With continuations (canvas: next chain step, links, chord membership), sent only when
-- the ack succeeds and only the first time for this task (the marker), more keys follow:
-- KEYS[6] qmulti:continued:{<task_id>}   string  set once its continuations are sent
-- KEYS[7] qmulti:chord:{<chord_id>}      hash    size, mid, body, eta, fired
-- KEYS[8] qmulti:chord:{<chord_id>}:done set     ids of the members that finished
-- KEYS[9..] four a target queue: {qmulti:<q>}:msgs, :ready, :scheduled, :wake
-- ARGV[8]  marker (and fired chord) ttl in milliseconds
-- ARGV[9]  chord member id, or '' when not a chord member
-- ARGV[10] the chord body's queue: its index among the target queues (1-based)
-- ARGV[11] '1' when the task failed or was revoked (such a member fires the chord at once)
-- ARGV[12..] per message: queue index, mid, body, eta ('' for none)
-- ARGV[4] '' (and KEYS[4], KEYS[5] untouched) when the result is stored elsewhere.
-- Returns 1 when the message was acked, 0 when the lease was lost.
local function push(q, mid, body, eta, now)
  local base = 8 + (q - 1) * 4
  if redis.call('HSETNX', KEYS[base + 1], mid, body) == 0 then return end
  local due = tonumber(eta)
  if due ~= nil and due > now then
    redis.call('ZADD', KEYS[base + 3], due, mid)
  else
    redis.call('RPUSH', KEYS[base + 2], mid)
  end
  if redis.call('LLEN', KEYS[base + 4]) == 0 then
    redis.call('RPUSH', KEYS[base + 4], '1')
  end
end

local function send_on()
  if not redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[8]) then
    return  -- another delivery of this task sent them already
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  for i = 12, #ARGV, 4 do
    push(tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now)
  end
  if ARGV[9] == '' then return end
  local chord = redis.call('HMGET', KEYS[7], 'size', 'fired')
  if not chord[1] or chord[2] then return end  -- unknown (expired), or fired already
  redis.call('SADD', KEYS[8], ARGV[9])
  if redis.call('SCARD', KEYS[8]) < tonumber(chord[1]) and ARGV[11] ~= '1' then
    if redis.call('PTTL', KEYS[7]) > 0 then  -- a chord in progress lives on, set and all
      redis.call('PEXPIRE', KEYS[7], ARGV[8])
      redis.call('PEXPIRE', KEYS[8], ARGV[8])
    end
    return
  end
  local body = redis.call('HMGET', KEYS[7], 'mid', 'body', 'eta')
  redis.call('HSET', KEYS[7], 'fired', '1')
  redis.call('HDEL', KEYS[7], 'body')
  redis.call('PEXPIRE', KEYS[7], ARGV[8])
  redis.call('DEL', KEYS[8])
  push(tonumber(ARGV[10]), body[1], body[2], body[3] or '', now)
end

local head = redis.call('GETRANGE', KEYS[4], 0, 7)
-- (A REVOKED mark, stored by revoke(), may be replaced by the node's own REVOKED.)
if ARGV[4] ~= '' and ((head ~= 'SUCCESS\n' and head ~= 'FAILURE\n' and head ~= 'REVOKED\n')
    or (head == 'REVOKED\n' and ARGV[3] == 'REVOKED')) then
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
  if #KEYS > 5 then send_on() end
  return 1
end
return 0
