-- begin: count one delivery of a message whose task is starting now, once per lease:
-- the lease's begun flag turns '+', so a re-sent begin counts nothing more.
-- KEYS[1] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- KEYS[2] {qmulti:<q>}:leased      hash  mid -> lease (token, begun flag at 23, owner)
-- ARGV[1] mid
-- ARGV[2] the lease token the caller holds
-- Returns the delivery count, or 0 when the lease is not current (lost): no stray count.
local lease = redis.call('HGET', KEYS[2], ARGV[1])
if not lease or string.sub(lease, 1, 22) ~= ARGV[2] then return 0 end
if string.sub(lease, 23, 23) == '+' then
  return tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '1')
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '+' .. string.sub(lease, 24))
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
