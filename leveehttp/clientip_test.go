package leveehttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/leveehttp"
)

func requestFrom(remote string, forwardedFor ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for _, v := range forwardedFor {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestClientIP_IsThePeerAndTrustsNoHeader(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1:1234":           "192.0.2.1",
		"[2001:db8::1]:443":        "2001:db8::1",
		"[fe80::1%eth0]:80":        "fe80::1%eth0",
		"@":                        "@", // a Unix socket's
		"not an address":           "not an address",
		"":                         "",
		"192.0.2.1":                "192.0.2.1", // no port: returned as it is
		"[2001:db8::1]:443:extra":  "[2001:db8::1]:443:extra",
		"198.51.100.200:65535":     "198.51.100.200",
		"[::ffff:192.0.2.1]:12345": "::ffff:192.0.2.1",
	}
	for remote, want := range cases {
		r := requestFrom(remote, "203.0.113.9") // a header any client can send
		assert.Equal(t, want, leveehttp.ClientIP(r), "RemoteAddr %q", remote)
	}
}

func TestClientIP_AllocatesNothing(t *testing.T) {
	r := requestFrom("[2001:db8::1]:443")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = leveehttp.ClientIP(r) }))
}

func TestForwardedClientIP_TrustsTheHeaderOnlyAsFarAsTrustedProxiesWroteIt(t *testing.T) {
	key := leveehttp.ForwardedClientIP(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48"))
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"a direct client's header is ignored", "192.0.2.1:1234", []string{"203.0.113.9"}, "192.0.2.1"},
		{"behind the proxy: the client it saw", "10.0.0.5:1234", []string{"192.0.2.1"}, "192.0.2.1"},
		{"a forged entry on the left is never reached", "10.0.0.5:1234", []string{"203.0.113.9, 192.0.2.1"}, "192.0.2.1"},
		{"two trusted proxies", "10.0.0.5:1234", []string{"203.0.113.9, 192.0.2.1, 10.1.2.3"}, "192.0.2.1"},
		{"several header lines, in order", "10.0.0.5:1234", []string{"203.0.113.9", "192.0.2.1, 10.1.2.3"}, "192.0.2.1"},
		{"several header lines, the last untrusted wins", "10.0.0.5:1234", []string{"203.0.113.9, 10.9.9.9", "192.0.2.1"}, "192.0.2.1"},
		{"spaces and empty entries", "10.0.0.5:1234", []string{" 192.0.2.1 ,, 10.1.2.3 ,"}, "192.0.2.1"},
		{"an entry with a port", "10.0.0.5:1234", []string{"192.0.2.1:5555"}, "192.0.2.1"},
		{"IPv6 with a port", "10.0.0.5:1234", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"IPv6 canonical form", "10.0.0.5:1234", []string{"2001:DB8:0:0::7"}, "2001:db8::7"},
		{"IPv4-mapped as IPv4", "10.0.0.5:1234", []string{"::ffff:192.0.2.1"}, "192.0.2.1"},
		{"a trusted IPv6 proxy", "[2001:db8:ffff::1]:443", []string{"192.0.2.1"}, "192.0.2.1"},
		{"a peer in IPv4-mapped form", "[::ffff:10.0.0.5]:1234", []string{"192.0.2.1"}, "192.0.2.1"},
		{"no header: the proxy itself", "10.0.0.5:1234", nil, "10.0.0.5"},
		{"every entry trusted: the leftmost", "10.0.0.5:1234", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"garbage stops at the nearest trusted hop", "10.0.0.5:1234", []string{"192.0.2.1, unknown, 10.2.2.2"}, "10.2.2.2"},
		{"garbage right away: the peer", "10.0.0.5:1234", []string{"attacker-chosen"}, "10.0.0.5"},
		{"a peer that is not an address", "@", []string{"192.0.2.1"}, "@"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, key(requestFrom(tc.remote, tc.xff...)))
		})
	}
}

func TestForwardedClientIP_PanicsWithoutAValidTrustedPrefix(t *testing.T) {
	assert.Equal(t, "levee: leveehttp.ForwardedClientIP: give at least one trusted proxy prefix",
		testkit.PanicMessage(t, func() { leveehttp.ForwardedClientIP() }))
	assert.Equal(t, "levee: leveehttp.ForwardedClientIP: trusted prefix 1 is not valid",
		testkit.PanicMessage(t, func() { leveehttp.ForwardedClientIP(netip.MustParsePrefix("10.0.0.0/8"), netip.Prefix{}) }))
}

func ExampleForwardedClientIP() {
	key := leveehttp.ForwardedClientIP(netip.MustParsePrefix("10.0.0.0/8")) // the load balancers

	behindTheBalancer := httptest.NewRequest(http.MethodGet, "/", nil)
	behindTheBalancer.RemoteAddr = "10.0.0.5:41000"
	behindTheBalancer.Header.Set("X-Forwarded-For", "203.0.113.9, 192.0.2.1") // the client sent the first
	fmt.Println(key(behindTheBalancer))

	direct := httptest.NewRequest(http.MethodGet, "/", nil)
	direct.RemoteAddr = "198.51.100.7:50000"
	direct.Header.Set("X-Forwarded-For", "203.0.113.9") // not written by a trusted proxy
	fmt.Println(key(direct))
	// Output:
	// 192.0.2.1
	// 198.51.100.7
}
