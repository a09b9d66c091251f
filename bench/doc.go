// Package bench measures levee side by side with the circuit breakers users
// would otherwise pick: github.com/sony/gobreaker/v2,
// github.com/failsafe-go/failsafe-go, github.com/felixgeelhaar/fortify and
// github.com/eapache/go-resiliency, with the floors every guarded call pays
// (a direct call, and context.WithTimeout alone).
//
// It is a module of its own so that users of levee never download the peer
// libraries. Everything is in the _test.go files; run the suite with
//
//	./run.sh            # -benchmem -count=6, then benchstat tables and the goal check
//	COUNT=1 ./run.sh    # a quick look
//
// docs/performance.md explains the workloads, the results and the goals.
package bench
