// Package hedge cuts the tail latency of calls that are safe to make
// twice: when an attempt has not answered within a delay, it starts
// another, and the first success wins (Dean and Barroso, The Tail at Scale,
// 2013).
//
//	getProfile := resilience.Wrap(fetchProfile,
//		hedge.Policy[Profile](20*time.Millisecond,
//			hedge.WithQuantileDelay(0.95, 10*time.Second), // hedge the slowest 5%, once 100 latencies are known
//			hedge.WithBudget(profilesBudget)),           // and never beyond the budget retries share
//		resilience.Timeout[Profile](time.Second),        // each attempt's deadline
//	)
//
// Policy builds the hedge; WithMaxHedges, WithQuantileDelay, WithRelease
// and WithBudget shape it. Retry and hedge answer different troubles: a
// retry repeats a call that failed, a hedge doubles a call that is slow.
// docs/hedging.md says when to use which, and how to combine them.
//
// The delays are timers of the time package: inside a testing/synctest
// bubble a hedge delay passes at once, exactly, and the test can tell which
// attempt won.
package hedge
