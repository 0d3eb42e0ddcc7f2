-- Append a batch of events to the capped event stream, in order (redis/events.py).
--
-- KEYS[1]  the event stream
-- ARGV[1]  about how many entries to keep (MAXLEN ~: Redis trims whole nodes)
-- ARGV[2..] the encoded events, oldest first
--
-- One script, not a pipeline of XADDs: the client sends one command and reads one
-- reply per batch, whatever its size. Returns how many were added.
for i = 2, #ARGV do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
end
return #ARGV - 1
