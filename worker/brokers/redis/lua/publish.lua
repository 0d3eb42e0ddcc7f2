-- publish: store one message, ready at the tail of its queue or scheduled until its eta.
-- KEYS[1] {qmulti:<q>}:msgs       hash  mid -> body
-- KEYS[2] {qmulti:<q>}:ready      list  mids, head = next to claim
-- KEYS[3] {qmulti:<q>}:scheduled  zset  mid -> eta (unix seconds)
-- KEYS[4] {qmulti:<q>}:wake       list  at most one token: "ready may be non-empty"
-- ARGV[1] mid
-- ARGV[2] body
-- ARGV[3] eta in unix seconds, or '' for none
-- Returns 1 when the message went to the ready list, 0 when it was scheduled, -1 when
-- the mid was stored already (a re-send: the first one stands, queued once).
-- The eta is compared with the server clock so that every host agrees on "due".
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -1 end
local eta = tonumber(ARGV[3])
local ready = 1
if eta ~= nil and eta > now then
  redis.call('ZADD', KEYS[3], eta, ARGV[1])
  ready = 0
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
-- Even a scheduled message wakes one blocked consumer, so that it shortens its wait
-- to the new eta instead of sleeping through it.
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
return ready
