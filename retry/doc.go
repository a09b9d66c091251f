// Package retry calls a failing function again, with backoff and jitter,
// within limits that keep retries from making an outage worse: a number of
// attempts, a maximum duration, the caller's deadline, the server's
// Retry-After, and a budget shared by every caller of one dependency.
//
//	getPrice := resilience.Wrap(fetchPrice,
//		retry.Policy[Price](retry.WithBudget(pricingBudget)), // outermost: each attempt below is retried
//		breaker.Policy[Price](pricing),                       // counts every attempt; its rejections say how long to wait
//		resilience.Timeout[Price](time.Second),               // innermost: each attempt gets its own deadline
//	)
//
// Policy builds the retry; WithMaxAttempts, WithBackoff, WithDelay,
// WithDecorrelatedJitter and WithMaxDuration shape it; If, Permanent and
// IsPermanent say what is worth retrying. A call that gives up returns an
// *Error that says how many attempts were made and wraps the last error.
//
// # Budgets
//
// A retry budget bounds the retries of many calls together: NewBudget(0.2,
// 10) allows retries up to 20% of the first attempts of the last 10 seconds,
// plus 10 a second. Without one, a dependency that fails every call gets
// WithMaxAttempts times its traffic from its clients, just when it can least
// take it; with one, at most 1.2 times, plus the floor.
//
// Three designs were weighed. Finagle's RetryBudget counts every request as
// a deposit in a window of 10 seconds and every retry as a withdrawal,
// allowing a percentage of the deposits plus a reserve of minRetriesPerSec
// × 10 s. gRPC's retry throttling keeps one token count per server: a
// failure takes a token, a success gives back a fraction (tokenRatio), and
// retries stop while the count is below half its maximum; it forgets
// nothing with time, and counts failures, not requests. Envoy's retry budget
// limits the retries in flight to a percentage of the requests in flight
// (min_retry_concurrency at least): a bound on concurrency, which needs
// every request's end to be seen and says nothing about rate. levee takes
// Finagle's model: a share of the recent requests is what "retries may add
// at most 20% of load" means, it needs no knowledge of the requests'
// outcomes or ends, and it ages out on its own. Two changes:
// the floor refills at minPerSecond a second with a burst of one second's
// worth, rather than a reserve of ten seconds' worth that a burst of
// failures could spend at once; and a deposit, the path every call takes,
// is one atomic add on a striped counter. Deposits are folded into the
// window's one-second buckets by the next withdrawal (or by every 1024th
// deposit), credited as made evenly since the first of them: a retry, the
// rare path, pays for the clock read and the lock.
//
// # Testing
//
// Delays are timers of the time package, and a budget's window reads
// time.Now: inside a testing/synctest bubble a ten-second backoff passes at
// once, exactly. WithRand makes the jitter reproducible.
package retry
