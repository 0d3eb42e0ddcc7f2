-- give_back: return leases that match any selector to the head of the queue, in claim
-- order. Serves release (one node, or one consumer of it) and requeue_dead_nodes (the
-- leases a dead node took before it was judged dead, so its later leases stay its own).
-- KEYS[1] {qmulti:<q>}:leased  hash  mid -> lease (16-digit claim us, 6-digit index,
--                                     begun flag, '\n' node_id '\n' consumer)
-- KEYS[2] {qmulti:<q>}:ready   list  mids
-- KEYS[3] {qmulti:<q>}:wake    list  wake-up token
-- ARGV[3i+1] node_id
-- ARGV[3i+2] consumer, or '' for every consumer of the node
-- ARGV[3i+3] only leases claimed at or before this time (microseconds), or '' for all
-- Returns how many went back.
local selectors = {}
for i = 1, #ARGV, 3 do
  local sel = {before = tonumber(ARGV[i + 2])}
  if ARGV[i + 1] == '' then
    sel.prefix = '\n' .. ARGV[i] .. '\n'
  else
    sel.exact = '\n' .. ARGV[i] .. '\n' .. ARGV[i + 1]
  end
  selectors[#selectors + 1] = sel
end
local function matches(lease)
  local owner = string.sub(lease, 24)
  for _, sel in ipairs(selectors) do
    local hit
    if sel.exact then
      hit = owner == sel.exact
    else
      hit = string.sub(owner, 1, #sel.prefix) == sel.prefix
    end
    if hit and (sel.before == nil or tonumber(string.sub(lease, 1, 16)) <= sel.before) then
      return true
    end
  end
  return false
end
local back = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if matches(all[i + 1]) then back[#back + 1] = {all[i + 1], all[i]} end
end
table.sort(back, function(a, b) return a[1] < b[1] end)
for i = #back, 1, -1 do
  redis.call('HDEL', KEYS[1], back[i][2])
  redis.call('LPUSH', KEYS[2], back[i][2])
end
if #back > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return #back
