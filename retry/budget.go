package retry

import (
	"fmt"
	"strings"

	"github.com/levee-go/levee/internal/budget"
)

// Budget limits retries to a share of the calls a dependency receives, so
// that a dependency in trouble does not get several times its usual load
// from clients retrying at once (a retry storm): the budget that Finagle
// calls a RetryBudget.
//
// Every call through a policy that holds the budget deposits its first
// attempt, successful or not, hedged or not. A retry (or a hedge) is a
// withdrawal: it is allowed while the retries of the last 10 seconds are
// fewer than ratio × the first attempts of the last 10 seconds, and
// otherwise while the floor of minPerSecond retries a second has some left
// (it refills at minPerSecond a second, up to minPerSecond). So during an
// outage the load on the dependency is at most (1 + ratio) times the
// calls, plus minPerSecond, whatever the attempts each policy allows; and a
// quiet client, whose few calls earn few retries, may still retry a few
// times a second.
//
// Create one with NewBudget per dependency and give it, with WithBudget and
// hedge.WithBudget, to every pipeline that calls that dependency. A Budget
// is safe for concurrent use by any number of goroutines and pipelines; a
// first attempt costs it one atomic add, without a lock or a clock read. It
// reads the time package only: a test creates its budgets inside its
// testing/synctest bubble.
type Budget budget.Budget

// NewBudget returns a budget that allows retries up to ratio of the first
// attempts made over the last 10 seconds, plus minPerSecond retries a second
// whatever the ratio: NewBudget(0.2, 10) is Finagle's default, 20% of the
// traffic and 10 a second. ratio must be in (0, 1] and minPerSecond must
// not be negative; NewBudget panics otherwise, naming the argument.
func NewBudget(ratio float64, minPerSecond int) *Budget {
	var problems []string
	if !(ratio > 0 && ratio <= 1) {
		problems = append(problems, fmt.Sprintf("ratio must be in (0, 1], got %v", ratio))
	}
	if minPerSecond < 0 {
		problems = append(problems, fmt.Sprintf("minPerSecond must not be negative, got %d", minPerSecond))
	}
	if len(problems) > 0 {
		panic("levee: retry.NewBudget: " + strings.Join(problems, "; "))
	}
	return (*Budget)(budget.New(ratio, minPerSecond))
}

// impl is the implementation behind b.
func (b *Budget) impl() *budget.Budget { return (*budget.Budget)(b) }
