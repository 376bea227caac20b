-- Give back the unit of an order whose payment failed: once, and only a unit that was reserved.
-- KEYS[1] stock          available units of this sale
-- KEYS[2] decisions      hash orderId -> "RESERVED" | "RELEASED" | "SOLD_OUT" | "PER_USER_LIMIT"
-- KEYS[3] user_units     hash userId -> units reserved by that user
-- ARGV    orderId, userId, quantity
-- Returns {decision after it, available stock}: "RELEASED", or what was decided if nothing was reserved.
local decided = redis.call('HGET', KEYS[2], ARGV[1])
if decided ~= 'RESERVED' then
  return {decided or 'UNKNOWN', tonumber(redis.call('GET', KEYS[1]) or '0')}  -- released already, or never held
end
local stock = redis.call('INCRBY', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[3], ARGV[2], -tonumber(ARGV[3]))  -- the buyer may try again
redis.call('HSET', KEYS[2], ARGV[1], 'RELEASED')
return {'RELEASED', stock}
