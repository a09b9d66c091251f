package leveeredis

import (
	"fmt"
	"time"
)

// Membership: which instances of a fleet policy are live. Each instance
// heartbeats into a sorted set of the policy, member = instance id, score =
// the Redis server's time in milliseconds at its last heartbeat; a script
// prunes the members whose last heartbeat is older than the member TTL (and
// any scored in the future, which only bad data can be), so an instance that
// stops (crashed, partitioned, shut down) leaves the count within one TTL,
// and a restarted one, with a new id, joins at its first heartbeat. The
// server's clock, not the instances', times every heartbeat: instances'
// clocks may disagree, and the TTL still means what it says.

// WithMemberTTL sets how long an instance stays a live member of the fleet
// after its last heartbeat (default three sync intervals, at least one
// second). A shorter TTL drops dead instances from the quorum sooner; a
// longer one rides out a slower heartbeat. It must be longer than the
// fleet's sync interval; NewBreaker panics otherwise.
func WithMemberTTL(d time.Duration) BreakerOption {
	if d <= 0 {
		panic(fmt.Sprintf("leveeredis: WithMemberTTL: the member TTL must be positive, got %v", d))
	}
	return func(c *breakerConfig) { c.memberTTL = d }
}

// luaNow defines now, the Redis server's time in milliseconds: every
// instance's scripts read the one clock.
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaHeartbeat defines heartbeat(key, id, ttl), which records id as seen
// now in the sorted set key, prunes it (luaPrune) and returns how many
// members are live. It needs luaNow and luaPrune before it.
const luaHeartbeat = `
local function heartbeat(key, id, ttl)
  redis.call('ZADD', key, now, id)
  prune(key, ttl)
  return redis.call('ZCARD', key)
end
`

// luaPrune defines prune(key, ttl), after luaNow: it drops the members of the sorted set
// key scored before now - ttl or after now + ttl, and sets the set to expire
// when its newest member would.
const luaPrune = `
local function prune(key, ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - ttl))
  redis.call('ZREMRANGEBYSCORE', key, '(' .. (now + ttl), '+inf')
  redis.call('PEXPIRE', key, 2 * ttl)
end
`
