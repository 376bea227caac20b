-- Reserve stock for one order, atomically and idempotently.
-- KEYS[1] stock          available units of this sale (an integer)
-- KEYS[2] decisions      hash orderId -> "RESERVED" | "SOLD_OUT" | "PER_USER_LIMIT"
-- KEYS[3] user_units     hash userId -> units reserved by that user
-- ARGV    orderId, userId, quantity, per-user limit
-- Returns {decision, available stock after it}.
local decided = redis.call('HGET', KEYS[2], ARGV[1])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if decided then
  return {decided, stock}            -- seen before: same answer, nothing changes
end
local quantity = tonumber(ARGV[3])
local user_units = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
local decision
if user_units + quantity > tonumber(ARGV[4]) then
  decision = 'PER_USER_LIMIT'
elseif stock < quantity then
  decision = 'SOLD_OUT'              -- checked before we touch the counter: never below zero
else
  stock = redis.call('DECRBY', KEYS[1], quantity)
  redis.call('HINCRBY', KEYS[3], ARGV[2], quantity)
  decision = 'RESERVED'
end
redis.call('HSET', KEYS[2], ARGV[1], decision)
return {decision, stock}
