-- nack: give leased messages back at the head of their queue, in the given order.
-- KEYS[1] {qmulti:<q>}:leased  hash  mid -> lease
-- KEYS[2] {qmulti:<q>}:ready   list  mids
-- KEYS[3] {qmulti:<q>}:wake    list  wake-up token
-- ARGV[1..] mids, first = the one to run first
-- Returns how many went back (a mid no longer leased is skipped).
local n = 0
for i = #ARGV, 1, -1 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return n
