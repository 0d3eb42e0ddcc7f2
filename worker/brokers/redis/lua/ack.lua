-- ack: remove finished messages of one queue, each only while the caller's lease is
-- its current one. A message given back meanwhile (and maybe leased to another node) is
-- left alone, so it runs again rather than being lost; a re-sent ack finds nothing.
-- KEYS[1] {qmulti:<q>}:msgs        hash  mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- KEYS[3] {qmulti:<q>}:leased      hash  mid -> lease (its first 22 characters: token)
-- ARGV[2i+1] mid
-- ARGV[2i+2] the lease token the caller holds for it
-- Returns how many were removed.
local n = 0
for i = 1, #ARGV, 2 do
  local lease = redis.call('HGET', KEYS[3], ARGV[i])
  if lease and string.sub(lease, 1, 22) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
