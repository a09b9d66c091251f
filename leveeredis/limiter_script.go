package leveeredis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// leaseScript is the fleet's token bucket, kept in Redis as one number: the
// theoretical arrival time (GCRA, as ratelimit keeps it locally), in
// microseconds of the server's clock (TIME), so that the instances' clocks
// never matter. It grants up to ARGV[3] tokens at once, as many as the
// bucket holds, and moves the arrival time on by one interval for each.
//
// It also keeps the instances that leased lately, a sorted set of instance
// id by the server time of their last lease, so that each instance knows
// how many share the limit (its local share when Redis is gone).
//
// KEYS[1] the arrival time, KEYS[2] the members.
// ARGV[1] interval (µs per token), ARGV[2] tolerance ((burst-1)·interval,
// µs), ARGV[3] tokens wanted (0 to only say it is alive), ARGV[4] instance
// id, ARGV[5] how long a member counts without leasing (ms).
//
// It returns {granted, wait, members}: wait is how many µs until the bucket
// has a token again (0 if it has one now). A value it cannot read is deleted
// (the next lease starts from a full bucket) and reported as an error that
// starts with "levee: bad fleet state".
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])

local raw = redis.pcall('GET', KEYS[1])
if type(raw) == 'table' and raw.err then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('levee: bad fleet state: ' .. KEYS[1] .. ': ' .. raw.err .. '; reset')
end
local tat = now
if raw then
  local v = tonumber(raw)
  if v == nil or v ~= v or v == math.huge or v == -math.huge then
    redis.call('DEL', KEYS[1])
    return redis.error_reply('levee: bad fleet state: ' .. KEYS[1] .. ' holds ' .. string.format('%q', string.sub(raw, 1, 40)) .. ', not a time; reset')
  end
  if v > now + tolerance + interval * (want + 1) + 3600e6 then
    -- a time far in the future would block the fleet for good
    redis.call('DEL', KEYS[1])
    return redis.error_reply('levee: bad fleet state: ' .. KEYS[1] .. ' holds a time ' .. string.format('%.0f', (v - now) / 1e6) .. 's ahead; reset')
  end
  if v > now then tat = v end
end

local avail = math.floor((now + tolerance - tat) / interval) + 1
if avail < 0 then avail = 0 end
local granted = math.min(want, avail)
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end

local ok = redis.pcall('ZADD', KEYS[2], now, ARGV[4])
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[2])
  return redis.error_reply('levee: bad fleet state: ' .. KEYS[2] .. ': ' .. ok.err .. '; reset')
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)
redis.call('PEXPIRE', KEYS[2], ttl)
local members = redis.call('ZCARD', KEYS[2])
return {granted, math.ceil(wait), members}
`)

// stateErrorPrefix starts the error replies of levee's scripts about bad
// state.
const stateErrorPrefix = "levee: bad fleet state: "

// classify turns a script's bad-state reply into a *DataError of policy
// (the script has deleted the bad key, so the next exchange starts afresh).
func classify(policy string, err error) error {
	var re redis.Error
	if errors.As(err, &re) && strings.Contains(re.Error(), stateErrorPrefix) {
		msg := re.Error()
		return &DataError{Policy: policy, Detail: msg[strings.Index(msg, stateErrorPrefix)+len(stateErrorPrefix):]}
	}
	return err
}

// leaseReply is the answer of leaseScript.
type leaseReply struct {
	granted int64
	wait    int64 // µs
	members int64
}

func runLease(ctx context.Context, c Client, policy string, keys []string, args ...any) (leaseReply, error) {
	v, err := leaseScript.Run(ctx, c, keys, args...).Int64Slice()
	if err != nil {
		return leaseReply{}, classify(policy, err)
	}
	if len(v) != 3 {
		return leaseReply{}, fmt.Errorf("leveeredis: lease script answered %d values, want 3", len(v))
	}
	return leaseReply{granted: v[0], wait: v[1], members: v[2]}, nil
}
