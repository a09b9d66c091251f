package leveeredis

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Client is the Redis client the fleet policies use: a *redis.Client for one
// server or a Sentinel-managed primary, or a *redis.ClusterClient for Redis
// Cluster (every key of one policy shares a hash tag, so one slot holds
// them). Make it with ContextTimeoutEnabled: true, which NewFleet requires:
// without it go-redis ignores context deadlines, and WithOpTimeout would
// bound nothing. The caller owns it: the fleet policies never close it.
//
// go-redis is the client because it is the Redis project's own Go client,
// kept by Redis's maintainers, with context deadlines on every command,
// connection pooling, scripts with EVALSHA fallback, pub/sub that
// reconnects, and Cluster and Sentinel behind the same interface.
type Client = redis.UniversalClient

// keyspace builds the keys of one fleet policy. Every key of the policy
// carries the hash tag {prefix:kind:name}, so that in a Redis Cluster all of
// a policy's keys live on one slot and one script can touch them together.
type keyspace struct {
	tag string
}

// newKeyspace validates prefix and name and returns their keyspace; it
// panics naming the setting when one is empty or holds a brace, which would
// break the hash tag.
func newKeyspace(prefix, kind, name string) keyspace {
	if prefix == "" {
		panic("leveeredis: WithKeyPrefix: the key prefix must not be empty")
	}
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("leveeredis: WithKeyPrefix: the key prefix %q must not hold '{' or '}' (they delimit the hash tag)", prefix))
	}
	if name == "" {
		panic("leveeredis: the policy name must not be empty")
	}
	if strings.ContainsAny(name, "{}") {
		panic(fmt.Sprintf("leveeredis: the policy name %q must not hold '{' or '}' (they delimit the hash tag)", name))
	}
	return keyspace{tag: "{" + prefix + ":" + kind + ":" + name + "}"}
}

// key is the policy's key for suffix: {prefix:kind:name}:suffix.
func (k keyspace) key(suffix string) string { return k.tag + ":" + suffix }

// DefaultKeyPrefix is the key prefix of every fleet policy unless
// WithKeyPrefix says otherwise.
const DefaultKeyPrefix = "levee"
