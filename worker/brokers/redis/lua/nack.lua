-- nack: give leased messages back at the head of their queue, in the given order, each
-- only while the caller's lease is its current one (a re-send finds nothing to do).
-- KEYS[1] {qmulti:<q>}:leased  hash  mid -> lease (its first 22 characters: token)
-- KEYS[2] {qmulti:<q>}:ready   list  mids
-- KEYS[3] {qmulti:<q>}:wake    list  wake-up token
-- ARGV[2i+1] mid, the first pair = the one to run first
-- ARGV[2i+2] the lease token the caller holds for it
-- Returns how many went back.
local n = 0
for i = #ARGV - 1, 1, -2 do
  local lease = redis.call('HGET', KEYS[1], ARGV[i])
  if lease and string.sub(lease, 1, 22) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('LPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return n
