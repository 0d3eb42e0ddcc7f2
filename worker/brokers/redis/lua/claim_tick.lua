-- claim_tick: send one periodic tick exactly once, whoever else is scheduling it.
-- KEYS[1] {qmulti}:beat                hash  entry name -> last due time sent (unix s)
-- KEYS[2] {qmulti:<q>}:msgs           hash  mid -> body
-- KEYS[3] {qmulti:<q>}:ready          list  mids, head = next to claim
-- KEYS[4] {qmulti:<q>}:wake           list  at most one token: "ready may be non-empty"
-- ARGV[1] entry name
-- ARGV[2] due time of this tick (unix seconds, as a decimal string)
-- ARGV[3] mid
-- ARGV[4] body
-- Returns 1 when this call sent the tick, 0 when it (or a later one) was sent already.
-- The claim and the publish are one step: no scheduler can claim without sending, and
-- a repeated call (a retry after a lost reply) sends nothing more.
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local due = tonumber(ARGV[2])
if last ~= nil and last >= due then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
return 1
