-- begin: count one delivery of a message whose task is starting now.
-- KEYS[1] {qmulti:<q>}:msgs        hash  mid -> body
-- KEYS[2] {qmulti:<q>}:deliveries  hash  mid -> times begun
-- ARGV[1] mid
-- Returns the new count, or 0 when the message is gone (acked meanwhile): no stray count.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
