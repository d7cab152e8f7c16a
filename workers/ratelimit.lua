--[[ ratelimit.lua: the sliding-log rate limiter shared by every ksync worker.

One call is one atomic decision for one bucket of one account. The only clock
is redis.call('TIME'); ARGV[2] lets unit tests inject "now" instead.

KEYS[1]  log    ZSET    one member per grant: score = grant time in µs since
                        the epoch, member = "<µs>-<seq>" (unique). Trimmed to
                        the longest window; PEXPIRE = longest window on grant.
KEYS[2]  pause  STRING  shared cool-down: its end in µs since the epoch.
                        SET ... PX = the pause length; only ever extended.
KEYS[3]  stats  HASH    counters: grants, denials, waited_us, cooldowns.
                        PEXPIRE = max(longest window, 7 days) on every write.

ARGV[1]  command: "acquire", "cooldown" or "stats"
ARGV[2]  now in µs since the epoch, or "" to use Redis TIME (tests inject)
ARGV[3]  acquire:  µs the caller slept before this attempt (added to waited_us)
         cooldown: pause length in µs
         stats:    ignored
ARGV[4]  n, the number of windows
ARGV[5 .. 4+2n]  n pairs: limit (grants), window in µs (margin included)

A grant made at t counts in a window W while t > now - W, so at most `limit`
grants lie in any interval of length W. Replies carry every number as a string
(Lua numbers returned to Redis are truncated to integers):
  acquire   {granted 1|0, wait in seconds "%.6f", now in µs}
  cooldown  {pause end in µs, now in µs}
  stats     {now in µs, pause left in seconds "%.6f", {grants in each window},
             HGETALL stats}
]]

local log, pause, stats = KEYS[1], KEYS[2], KEYS[3]
local command = ARGV[1]
local STATS_TTL_US = 7 * 86400 * 1000000

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local amount = tonumber(ARGV[3])

local n = tonumber(ARGV[4])
local limits, windows, longest = {}, {}, 0
for i = 1, n do
  limits[i] = tonumber(ARGV[3 + 2 * i])
  windows[i] = tonumber(ARGV[4 + 2 * i])
  longest = math.max(longest, windows[i])
end

-- Integers as "%.0f": tostring() would switch to exponent form above 1e14.
local function us(x) return string.format('%.0f', x) end
local function seconds(x) return string.format('%.6f', x / 1000000) end
local function ms_ceil(x) return math.max(1, math.ceil(x / 1000)) end
local function touch_stats()
  redis.call('PEXPIRE', stats, ms_ceil(math.max(longest, STATS_TTL_US)))
end
local function pause_left()
  return math.max(0, tonumber(redis.call('GET', pause) or '0') - now)
end
local function in_window(i)
  return '(' .. us(now - windows[i])
end

if command == 'acquire' then
  redis.call('ZREMRANGEBYSCORE', log, '-inf', us(now - longest))
  if amount > 0 then
    redis.call('HINCRBY', stats, 'waited_us', us(amount))
  end
  local wait = pause_left()
  for i = 1, n do
    local count = redis.call('ZCOUNT', log, in_window(i), '+inf')
    if count >= limits[i] then
      -- The grant whose departure from the window makes room for one more.
      local leaving = redis.call('ZRANGEBYSCORE', log, in_window(i), '+inf',
                                 'WITHSCORES', 'LIMIT', count - limits[i], 1)
      wait = math.max(wait, tonumber(leaving[2]) + windows[i] - now)
    end
  end
  if wait > 0 then
    redis.call('HINCRBY', stats, 'denials', 1)
    touch_stats()
    return {0, seconds(wait), us(now)}
  end
  local seq = redis.call('HINCRBY', stats, 'grants', 1)
  redis.call('ZADD', log, us(now), us(now) .. '-' .. seq)
  redis.call('PEXPIRE', log, ms_ceil(longest))
  touch_stats()
  return {1, seconds(0), us(now)}
end

if command == 'cooldown' then
  redis.call('HINCRBY', stats, 'cooldowns', 1)
  touch_stats()
  local current = tonumber(redis.call('GET', pause) or '0')
  if amount > 0 and now + amount > current then
    current = now + amount
    redis.call('SET', pause, us(current), 'PX', ms_ceil(amount))
  end
  return {us(current), us(now)}
end

if command == 'stats' then
  local counts = {}
  for i = 1, n do
    counts[i] = redis.call('ZCOUNT', log, in_window(i), '+inf')
  end
  return {us(now), seconds(pause_left()), counts, redis.call('HGETALL', stats)}
end

return redis.error_reply('ratelimit.lua: unknown command ' .. tostring(command))
