-- chord_init: record a chord before its members are sent: its size and its body message,
-- which the finish of the member that completes the chord publishes (finish.lua).
-- KEYS[1] qmulti:chord:{<chord_id>}  hash  size, mid, body, eta (fired: set by finish)
-- ARGV[1] size
-- ARGV[2] body mid
-- ARGV[3] body
-- ARGV[4] body eta, or ''
-- ARGV[5] the record's life in milliseconds, '0' for none: a chord whose producer died
--         before sending every member never completes, and must not stay for ever
-- Returns 1 when recorded, 0 when the chord was recorded already (a re-send).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'size', ARGV[1], 'mid', ARGV[2], 'body', ARGV[3], 'eta', ARGV[4])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
