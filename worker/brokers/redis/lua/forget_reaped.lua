-- forget_reaped: drop nodes from the reaping set once their leases went back, unless a
-- newer judgement (the node came back and died again) replaced the one just handled.
-- KEYS[1] {qmulti}:reaping  zset  node_id -> judged dead at (microseconds)
-- ARGV[2i+1] node_id
-- ARGV[2i+2] the judgement time that was handled (microseconds)
-- Returns how many were dropped.
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
