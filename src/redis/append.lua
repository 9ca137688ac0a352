-- pushlab: append a batch of messages to the shared log, atomically.
--
-- KEYS[1]  the log's hash: field "epoch" (the log's epoch) and field "seq"
--          (the N of the last message appended)
-- KEYS[2]  the log's stream: one entry per message, id "N-0", fields
--          "t" (topic), "d" (data), "o" (origin) and "k" (kind)
-- ARGV[1]  the epoch this node proposes, installed only when Redis has none
-- ARGV[2]  how many entries the stream keeps (exact MAXLEN, at least 1)
-- then four arguments per message, one message or more:
--   topic; data (a binary message's standard base64); origin,
--   "<node>:<ticket>" (the appending node knows its message when its tail
--   reads it back); kind, "t" text or "b" binary
--
-- Returns {epoch, N, count}: the messages got the ids "epoch-(N-count+1)"
-- to "epoch-N", in the order given. If an XADD fails after `count` ≥ 1
-- messages were added, those stay and the reply is {epoch, N, count,
-- error}: the rest were not appended. If the first fails, the reply is
-- that error and nothing changed.

local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local epoch = meta[1]
local n
if epoch then
  n = tonumber(meta[2] or '0')
else
  -- No epoch: the log is new, or Redis lost it. Entries left in the
  -- stream belong to a lost epoch; start the stream over with ours.
  epoch = ARGV[1]
  n = 0
  redis.call('DEL', KEYS[2])
end
local first = n + 1
local failed
for i = 3, #ARGV - 3, 4 do
  -- XADD before the hash is written: if it fails, N is not used up.
  local added = redis.pcall('XADD', KEYS[2], string.format('%d-0', n + 1),
    't', ARGV[i], 'd', ARGV[i + 1], 'o', ARGV[i + 2], 'k', ARGV[i + 3])
  if type(added) == 'table' and added.err then
    failed = added.err
    break
  end
  n = n + 1
end
local count = n - first + 1
if count == 0 then
  return redis.error_reply(failed or 'ERR pushlab: no message to append')
end
redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[2])
redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', n)
if failed then
  return {epoch, n, count, failed}
end
return {epoch, n, count}
