-- purge: delete every ready message of a queue (scheduled and leased ones stay).
-- KEYS[1] {qmulti:<q>}:ready       list  mids
-- KEYS[2] {qmulti:<q>}:msgs        hash  mid -> body
-- KEYS[3] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- Returns how many were deleted.
local mids = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
for i = 1, #mids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #mids) do chunk[#chunk + 1] = mids[j] end
  redis.call('HDEL', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[3], unpack(chunk))
end
return #mids
