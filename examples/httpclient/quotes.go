package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/throttle"
)

// The quote pipeline calls the same service's /quote through every policy
// the price pipeline has not: a retry and a hedge sharing one budget, a
// bulkhead, a breaker that trips on a failure rate over a time window and
// times its calls, an adaptive throttle and a rate limit, in the order
// docs/limits.md advises. Its job in the demo is to give each of their
// signals a series (docs/grafana/levee.json shows them all), so its knobs
// are set to make each one move within a few seconds of traffic: a budget
// small enough to refuse, a bulkhead small enough to be full when a hedge
// joins a slow attempt, a rate limit the retries overrun.

// quoteName names every policy of the quote pipeline, and so its series.
const quoteName = "quote-api"

// quoteSlowEvery makes every quoteSlowEvery-th /quote slow while the service
// is up: slower than the hedge delay (a hedge starts) and than the breaker's
// slow-call duration, but within the timeout.
const quoteSlowEvery = 3

// quoteDelays are the quote pipeline's durations, from the price pipeline's
// timeout: slow answers take slow, the hedge waits hedge, a call is slow
// for the breaker past slowCall.
type quoteDelays struct{ timeout, slow, hedge, slowCall time.Duration }

func quoteDelaysFor(timeout time.Duration) quoteDelays {
	return quoteDelays{timeout: timeout, slow: timeout / 2, hedge: timeout / 4, slowCall: timeout / 3}
}

// newQuotePipeline returns the function that fetches a quote from url
// through the pipeline, and the breaker it trips.
func newQuotePipeline(client *http.Client, url string, d quoteDelays) (resilience.Func[string], *breaker.Breaker) {
	isLocal := func(err error) bool { // refusals that say nothing about the quote service
		return errors.Is(err, throttle.ErrThrottled) || errors.Is(err, ratelimit.ErrLimited)
	}
	budget := retry.NewBudget(0.1, 1)
	quotes := breaker.New(quoteName,
		breaker.WithTimeWindow(10*time.Second, 10), breaker.WithFailureRate(0.5), breaker.WithMinCalls(5),
		breaker.WithSlowCallDuration(d.slowCall), breaker.WithCallDurationHistogram(),
		breaker.WithOpenTimeout(time.Second), breaker.WithIsIgnored(isLocal))
	fetch := func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/quote", nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /quote: %s", resp.Status)
		}
		return string(body), nil
	}
	return resilience.Wrap(fetch,
		retry.Policy[string](retry.WithMaxAttempts(3), retry.WithBackoff(d.hedge, d.timeout), retry.WithBudget(budget)),
		hedge.Policy[string](d.hedge, hedge.WithBudget(budget)),
		bulkhead.Policy[string](bulkhead.New(quoteName, 2)),
		breaker.Policy[string](quotes),
		throttle.Policy[string](throttle.New(quoteName)),
		ratelimit.Policy[string](ratelimit.New(quoteName, 10, time.Second)),
		resilience.Timeout[string](d.timeout),
	), quotes
}
