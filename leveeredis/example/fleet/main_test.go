package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/levee-go/levee/leveeredis/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example prints the same story on every run: one instance alone
// opens only itself, a quorum opens all three, one probe per open period,
// and every instance closes when the dependency is back.
func TestExampleOutput(t *testing.T) {
	s := redistest.Start(t)
	var out strings.Builder
	if err := run(&out, s.Addr(), "example"); err != nil {
		t.Fatal(err)
	}
	want := `three instances, fleet closed: a=closed b=closed c=closed
a sees the dependency fail: a=open b=closed c=closed (1 of 3 tripped, fleet closed)
b too: quorum, fleet open: a=open b=open c=open
open period over: 1 probe for the fleet, it fails: a=open b=open c=open
dependency back: 2 probes in all, fleet closed: a=closed b=closed c=closed
`
	if out.String() != want {
		t.Errorf("the example printed\n%s\nwant\n%s", out.String(), want)
	}
}
