-- claim: lease up to `limit` ready messages of one queue to (node_id, consumer).
-- KEYS[1] {qmulti:<q>}:ready        list  mids
-- KEYS[2] {qmulti:<q>}:scheduled    zset  mid -> eta
-- KEYS[3] {qmulti:<q>}:msgs         hash  mid -> body
-- KEYS[4] {qmulti:<q>}:deliveries   hash  mid -> times begun
-- KEYS[5] {qmulti:<q>}:leased       hash  mid -> lease (see below)
-- KEYS[6] {qmulti:<q>}:wake         list  wake-up token
-- KEYS[7] {qmulti:<q>}:dead         zset  mid -> dead-lettered at (microseconds)
-- KEYS[8] {qmulti:<q>}:dead:reason  hash  mid -> reason
-- KEYS[9] {qmulti:<q>}:dead:body    hash  mid -> body
-- ARGV[1] node_id
-- ARGV[2] consumer
-- ARGV[3] limit
-- ARGV[4] max_deliveries
-- ARGV[5] '1' to recover first: a previous claim of this consumer may have run without
--         its reply arriving; its leases not in ARGV[6..] go back to the head first
-- ARGV[6..] mids this consumer still holds (only read when ARGV[5] == '1')
-- Lease value: 16-digit claim time in microseconds .. 6-digit index in the batch ..
--   begun flag ('-', '+' once begin/start counted it) .. '\n' .. node_id .. '\n' ..
--   consumer. The fixed-width prefix sorts in claim order (so give-backs keep queue
--   order) and dates the lease for requeue_dead_nodes. Its first 22 characters are the
--   lease's token: every later call on the message must name it (fencing).
-- Returns {wait, mid1, body1, deliveries1, token1, mid2, ...}; wait is '' or the seconds
-- until the next scheduled eta (a string: Lua numbers would be truncated).
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = now_us / 1000000

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  redis.call('RPUSH', KEYS[1], unpack(due))
  redis.call('ZREM', KEYS[2], unpack(due))
end

local owner = '\n' .. ARGV[1] .. '\n' .. ARGV[2]
if ARGV[5] == '1' then
  local held = {}
  for i = 6, #ARGV do held[ARGV[i]] = true end
  local lost = {}
  local all = redis.call('HGETALL', KEYS[5])
  for i = 1, #all, 2 do
    if string.sub(all[i + 1], 24) == owner and not held[all[i]] then
      lost[#lost + 1] = {all[i + 1], all[i]}
    end
  end
  table.sort(lost, function(a, b) return a[1] < b[1] end)
  for i = #lost, 1, -1 do
    redis.call('HDEL', KEYS[5], lost[i][2])
    redis.call('LPUSH', KEYS[1], lost[i][2])
  end
end

local limit = tonumber(ARGV[3])
local max_deliveries = tonumber(ARGV[4])
local stamp = string.format('%016d', now_us)
local out = {''}
local n = 0
while n < limit do
  local mids = redis.call('LPOP', KEYS[1], limit - n)
  if not mids then break end
  for _, mid in ipairs(mids) do
    local body = redis.call('HGET', KEYS[3], mid)
    if body then  -- a mid without a body was acked or purged already: skip it
      local count = tonumber(redis.call('HGET', KEYS[4], mid) or '0')
      if count >= max_deliveries then
        redis.call('HDEL', KEYS[3], mid)
        redis.call('HDEL', KEYS[4], mid)
        redis.call('ZADD', KEYS[7], now_us, mid)
        redis.call('HSET', KEYS[8], mid, 'delivered ' .. count .. ' times without an outcome')
        redis.call('HSET', KEYS[9], mid, body)
      else
        n = n + 1
        local token = stamp .. string.format('%06d', n)
        redis.call('HSET', KEYS[5], mid, token .. '-' .. owner)
        out[#out + 1] = mid
        out[#out + 1] = body
        out[#out + 1] = count
        out[#out + 1] = token
      end
    end
  end
end

-- Pass the baton: what is left wakes the next blocked consumer.
if redis.call('LLEN', KEYS[1]) > 0 and redis.call('LLEN', KEYS[6]) == 0 then
  redis.call('RPUSH', KEYS[6], '1')
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt > 0 then
  out[1] = string.format('%.6f', math.max(tonumber(nxt[2]) - now, 0))
end
return out
