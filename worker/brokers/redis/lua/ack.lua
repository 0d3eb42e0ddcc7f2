-- ack: remove finished messages of one queue. A message no longer leased (given back
-- meanwhile) is left alone, so it runs again rather than being lost.
-- KEYS[1] {qmulti:<q>}:msgs        hash  mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased      hash  mid -> lease
-- ARGV[1..] mids
-- Returns how many were removed.
local n = 0
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[3], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
