-- pushlab: the shared log's epoch and last N, installing an epoch when
-- Redis has none (the same rule as the append script's).
--
-- KEYS[1]  the log's hash: fields "epoch" and "seq"
-- KEYS[2]  the log's stream
-- ARGV[1]  the epoch this node proposes, installed only when Redis has none
--
-- Returns {epoch, N} (N is 0 in a new epoch).

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
