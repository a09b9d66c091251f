package leveehttp

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// requestKey is the context key under which RateLimitHandler gives its
// limiter the request.
type requestKey struct{}

// RequestKey turns key, a function of a request, into a key function for
// ratelimit.WithKey, so that a limiter behind RateLimitHandler keeps a
// bucket per client, per API key or per route:
//
//	perClient := ratelimit.New("api-per-client", 100, time.Minute,
//		ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP)))
//	perToken := ratelimit.New("api-per-token", 1000, time.Hour,
//		ratelimit.WithKey(leveehttp.RequestKey(func(r *http.Request) string {
//			return r.Header.Get("X-Api-Key")
//		})))
//
// RateLimitHandler puts the request in the context it gives its limiter,
// and the key function returned reads it there and calls key. A call made
// with any other context (the limiter used outside RateLimitHandler) has no
// request, and its key is "": such calls share one bucket. key is called
// once per request, and must be fast and safe for concurrent use; a key
// taken from a header is the client's to choose, so give such limits a
// ratelimit.WithMaxKeys you can afford. key must not be nil; RequestKey
// panics otherwise.
func RequestKey(key func(r *http.Request) string) func(ctx context.Context) string {
	if key == nil {
		panic("levee: leveehttp.RequestKey: key must not be nil")
	}
	return func(ctx context.Context) string {
		if r, ok := ctx.Value(requestKey{}).(*http.Request); ok {
			return key(r)
		}
		return ""
	}
}

// ClientIP returns the address of the peer that sent r, from r.RemoteAddr
// without its port: "192.0.2.1", "2001:db8::1". It is the safe default key
// of a limit per client: it trusts no header, since any client can send an
// X-Forwarded-For of its choosing. Behind a proxy or a load balancer every
// request comes from the proxy; use ForwardedClientIP there, naming the
// proxies. A RemoteAddr that is not host:port (a Unix socket's, a test's)
// is returned as it is. ClientIP allocates nothing.
//
// An IPv6 client usually holds a whole /64: to limit networks rather than
// addresses, mask the address in a key function of your own.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ForwardedClientIP returns a key function that trusts the X-Forwarded-For
// header only as far as it was written by the proxies trusted names: for a
// request whose peer (r.RemoteAddr) is a trusted proxy, it returns the
// rightmost address of X-Forwarded-For that is not a trusted proxy's, which
// is the client the first trusted proxy saw; for any other request, the
// peer's address, as ClientIP does, whatever the header says. Addresses a
// client put on the left of the header are never reached past an address no
// trusted proxy wrote, so a client cannot choose its key.
//
//	lb := netip.MustParsePrefix("10.0.0.0/8") // the load balancers' network
//	perClient := ratelimit.New("api-per-client", 100, time.Minute,
//		ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ForwardedClientIP(lb))))
//
// Every X-Forwarded-For line counts, in order, and every comma-separated
// entry, an address or an address with a port. When every entry is a
// trusted proxy's, the leftmost is returned; at an entry that is not an
// address, the search stops at the last trusted proxy before it. Addresses
// come back in their canonical form, IPv4-mapped IPv6 addresses as IPv4.
//
// trusted must hold at least one valid prefix; ForwardedClientIP panics
// otherwise, naming the problem. The function returned is safe for
// concurrent use.
func ForwardedClientIP(trusted ...netip.Prefix) func(r *http.Request) string {
	if len(trusted) == 0 {
		panic("levee: leveehttp.ForwardedClientIP: give at least one trusted proxy prefix")
	}
	prefixes := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		if !p.IsValid() {
			panic("levee: leveehttp.ForwardedClientIP: trusted prefix " + strconv.Itoa(i) + " is not valid")
		}
		prefixes[i] = p.Masked()
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, ok := parseAddr(ClientIP(r))
		if !ok || !isTrusted(peer) {
			return ClientIP(r)
		}
		nearest := peer // the trusted hop nearest the client so far
		lines := r.Header.Values("X-Forwarded-For")
		for i := len(lines) - 1; i >= 0; i-- {
			line := lines[i]
			for line != "" {
				entry := line
				if comma := strings.LastIndexByte(line, ','); comma >= 0 {
					entry, line = line[comma+1:], line[:comma]
				} else {
					line = ""
				}
				entry = strings.TrimSpace(entry)
				if entry == "" {
					continue
				}
				a, ok := parseAddr(entry)
				if !ok {
					return nearest.String()
				}
				if !isTrusted(a) {
					return a.String()
				}
				nearest = a
			}
		}
		return nearest.String()
	}
}

// parseAddr parses an address, with or without a port, IPv4-mapped IPv6
// addresses as IPv4.
func parseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
