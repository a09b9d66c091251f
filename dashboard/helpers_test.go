package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/dashboard"
)

var errDown = errors.New("dependency down")

func fail(context.Context) error    { return errDown }
func succeed(context.Context) error { return nil }

// trip fails calls through b until it opens.
func trip(t *testing.T, b *breaker.Breaker) {
	t.Helper()
	for i := 0; i < 100 && b.State() != breaker.Open; i++ {
		_ = b.Call(context.Background(), fail)
	}
	require.Equal(t, breaker.Open, b.State(), "breaker %q did not open", b.Name())
}

// get serves a GET of target (a path under /debug/levee/) and returns the
// recorder.
func get(d *dashboard.Dashboard, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/levee/"+target, nil))
	return rec
}

// snapshot GETs api/snapshot?query and decodes it.
func snapshot(t *testing.T, d *dashboard.Dashboard, query string) dashboard.Snapshot {
	t.Helper()
	rec := get(d, "api/snapshot?"+query)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var s dashboard.Snapshot
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
	return s
}

// find returns the policy of kind and name in s.
func find(t *testing.T, s dashboard.Snapshot, kind, name string) dashboard.Policy {
	t.Helper()
	for _, p := range s.Policies {
		if p.Kind == kind && p.Name == name {
			return p
		}
	}
	var have []string
	for _, p := range s.Policies {
		have = append(have, p.Kind+" "+p.Name)
	}
	t.Fatalf("no %s %q in the snapshot; it has: %s", kind, name, strings.Join(have, ", "))
	return dashboard.Policy{}
}

// count returns the count of outcome in p.
func count(t *testing.T, p dashboard.Policy, outcome string) int64 {
	t.Helper()
	for _, c := range p.Counts {
		if c.Outcome == outcome {
			return c.N
		}
	}
	t.Fatalf("%s %q has no outcome %q", p.Kind, p.Name, outcome)
	return 0
}

// rate returns the per-second rate of outcome in p, failing when absent.
func rate(t *testing.T, p dashboard.Policy, outcome string) float64 {
	t.Helper()
	for _, c := range p.Counts {
		if c.Outcome == outcome {
			require.NotNil(t, c.PerSecond, "%s %q: no rate for %q yet", p.Kind, p.Name, outcome)
			return *c.PerSecond
		}
	}
	t.Fatalf("%s %q has no outcome %q", p.Kind, p.Name, outcome)
	return 0
}
