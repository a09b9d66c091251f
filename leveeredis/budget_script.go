package leveeredis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// budgetScript adds one instance's new first attempts and retries to the
// fleet's counts, time-bucketed on the server's clock in one hash (fields
// d:<bucket> and w:<bucket>), forgets the buckets that left the window, and
// returns the fleet's totals over the window and how many instances
// reported within it.
//
// It also keeps each live instance's demand, the retries it asked for
// over its last sync interval, and their sum kept as it goes (so a sync
// costs the same whatever the fleet's size): an instance's share of the
// fleet's unspent retries depends on it.
//
// KEYS[1] the counts, KEYS[2] the members, KEYS[3] the demands (field
// "total" and one per instance id).
// ARGV[1] bucket width (ms), ARGV[2] buckets in the window, ARGV[3] new
// first attempts, ARGV[4] new retries, ARGV[5] instance id, ARGV[6] its
// demand.
//
// It returns {first attempts, retries, members, total demand}. A key it
// cannot read is deleted and reported as an error that starts with
// "levee: bad fleet state".
var budgetScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local width = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local idx = math.floor(now / width)

local function bad(key, what)
  redis.call('DEL', key)
  return redis.error_reply('levee: bad fleet state: ' .. key .. ' ' .. what .. '; reset')
end

local all = redis.pcall('HGETALL', KEYS[1])
if type(all) == 'table' and all.err then return bad(KEYS[1], all.err) end
local d, w = 0, 0
for i = 1, #all, 2 do
  local kind, b = string.match(all[i], '^([dw]):(%d+)$')
  local v = tonumber(all[i + 1])
  if kind == nil or v == nil or v < 0 or v ~= math.floor(v) then
    return bad(KEYS[1], 'holds ' .. string.format('%q', string.sub(all[i] .. '=' .. all[i + 1], 1, 40)) .. ', not a count')
  end
  b = tonumber(b)
  if b > idx + math.ceil(3600000 / width) then
    -- more than an hour ahead (slack for the server's clock stepping
    -- back): no script wrote it, and it would never age out
    return bad(KEYS[1], 'holds ' .. string.format('%q', string.sub(all[i], 1, 40)) .. ', a bucket ahead of the server\'s clock')
  end
  if b <= idx - n then
    redis.call('HDEL', KEYS[1], all[i])
  elseif kind == 'd' then
    d = d + v
  else
    w = w + v
  end
end
local dd, dw = tonumber(ARGV[3]), tonumber(ARGV[4])
if dd > 0 then redis.call('HINCRBY', KEYS[1], 'd:' .. idx, dd); d = d + dd end
if dw > 0 then redis.call('HINCRBY', KEYS[1], 'w:' .. idx, dw); w = w + dw end
redis.call('PEXPIRE', KEYS[1], width * (n + 1))

local ok = redis.pcall('ZADD', KEYS[2], now, ARGV[5])
if type(ok) == 'table' and ok.err then return bad(KEYS[2], ok.err) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - width * n)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - width * n)
redis.call('PEXPIRE', KEYS[2], width * n)

local function count(key, field)
  local v = redis.pcall('HGET', key, field)
  if type(v) == 'table' and v.err then return nil, v.err end
  if not v then return 0 end
  local x = tonumber(v)
  if x == nil or x < 0 then return nil, 'holds ' .. string.format('%q', string.sub(field .. '=' .. v, 1, 40)) .. ', not a count' end
  return x
end
local total, err = count(KEYS[3], 'total')
if total == nil then return bad(KEYS[3], err) end
for _, id in ipairs(gone) do
  local old = count(KEYS[3], id) or 0
  total = total - old
  redis.call('HDEL', KEYS[3], id)
end
local mine, err2 = count(KEYS[3], ARGV[5])
if mine == nil then return bad(KEYS[3], err2) end
total = math.max(total - mine + tonumber(ARGV[6]), 0)
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6], 'total', total)
redis.call('PEXPIRE', KEYS[3], width * n)
return {d, w, redis.call('ZCARD', KEYS[2]), total}
`)

// budgetReply is the answer of budgetScript: the fleet's window.
type budgetReply struct {
	deposits, withdrawals, members, demand int64
}

func runBudget(ctx context.Context, c Client, policy string, keys []string, args ...any) (budgetReply, error) {
	v, err := budgetScript.Run(ctx, c, keys, args...).Int64Slice()
	if err != nil {
		return budgetReply{}, classify(policy, err)
	}
	if len(v) != 4 {
		return budgetReply{}, fmt.Errorf("leveeredis: budget script answered %d values, want 4", len(v))
	}
	return budgetReply{deposits: v[0], withdrawals: v[1], members: v[2], demand: v[3]}, nil
}
