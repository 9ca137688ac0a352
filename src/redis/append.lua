-- pushlab: append one message to the shared log, atomically.
--
-- KEYS[1]  the log's hash: field "epoch" (the log's epoch) and field "seq"
--          (the N of the last message appended)
-- KEYS[2]  the log's stream: one entry per message, id "N-0", fields
--          "t" (topic), "d" (data), "o" (origin) and "k" (kind)
-- ARGV[1]  the epoch this node proposes, installed only when Redis has none
-- ARGV[2]  how many entries the stream keeps (exact MAXLEN, at least 1)
-- ARGV[3]  the topic
-- ARGV[4]  the message (a binary message's standard base64)
-- ARGV[5]  the origin, "<node>:<ticket>": the appending node knows its
--          message when its tail reads it back
-- ARGV[6]  the kind: "t" text, "b" binary
--
-- Returns {epoch, N}: the message's id is "epoch-N".

local epoch = redis.call('HGET', KEYS[1], 'epoch')
local n
if epoch then
  n = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') + 1
else
  -- No epoch: the log is new, or Redis lost it. Entries left in the
  -- stream belong to a lost epoch; start the stream over with ours.
  epoch = ARGV[1]
  n = 1
  redis.call('DEL', KEYS[2])
end
-- XADD first: if it fails, nothing has changed and N is not used up.
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], string.format('%d-0', n),
  't', ARGV[3], 'd', ARGV[4], 'o', ARGV[5], 'k', ARGV[6])
redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', n)
return {epoch, n}
