package leveeredis

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKeyspaceSharesOneHashTag(t *testing.T) {
	k := newKeyspace("levee", "breaker", "payments")
	a, b := k.key("members"), k.key("state")
	assert.Equal(t, "{levee:breaker:payments}:members", a)
	// Redis Cluster hashes only what is inside the braces: the two keys of
	// one policy land on one slot, so one script may touch both.
	assert.Equal(t, hashTag(a), hashTag(b))
}

func hashTag(key string) string {
	i, j := -1, -1
	for n, c := range key {
		if c == '{' && i < 0 {
			i = n
		}
		if c == '}' && i >= 0 {
			j = n
			break
		}
	}
	return key[i+1 : j]
}

func TestKeyspaceRefusesBadSettings(t *testing.T) {
	assert.PanicsWithValue(t, "leveeredis: WithKeyPrefix: the key prefix must not be empty", func() { newKeyspace("", "breaker", "x") })
	assert.Panics(t, func() { newKeyspace("a{b", "breaker", "x") })
	assert.PanicsWithValue(t, "leveeredis: the policy name must not be empty", func() { newKeyspace("levee", "breaker", "") })
	assert.Panics(t, func() { newKeyspace("levee", "breaker", "pay}ments") })
}
