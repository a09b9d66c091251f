package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/dashboard"
)

// A dashboard mounted beside pprof, and a breaker registered with it. The
// page is at /debug/levee/; a script reads the same data as JSON.
func Example() {
	d := dashboard.New()
	payments := d.NewBreaker("payments", breaker.WithFailureThreshold(1))

	mux := http.NewServeMux()
	mux.Handle("/debug/levee/", d) // in a real service: behind your own authentication

	_ = payments.Call(context.Background(), func(context.Context) error { return errors.New("down") })

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/levee/api/snapshot?kind=breaker", nil))
	var s dashboard.Snapshot
	_ = json.Unmarshal(rec.Body.Bytes(), &s)
	p := s.Policies[0]
	fmt.Println(p.Kind, p.Name, p.State)
	fmt.Println(s.Summary.Open, "open of", s.Summary.Total)
	// Output:
	// breaker payments open
	// 1 open of 1
}

// Controls are off unless an authorization function says who may use
// them; a control request must also be a same-origin POST carrying the
// page's CSRF token.
func ExampleWithControls() {
	staff := func(r *http.Request) bool {
		user, _, ok := r.BasicAuth() // or your session, your roles
		return ok && user == "oncall"
	}
	d := dashboard.New(dashboard.WithControls(staff))
	d.NewBreaker("payments")

	// A control without the page's token is refused before staff is asked.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/debug/levee/api/control", nil)
	req.SetBasicAuth("oncall", "secret")
	d.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 403
}
