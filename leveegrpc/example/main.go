// Command example shows a gRPC client's circuit breaker opening during an
// outage and closing once the server is back, against a real server on
// loopback:
//
//	cd leveegrpc && go run ./example
//
// The server is gRPC's own health service. The client checks it every 20
// ms through leveegrpc's interceptor and a breaker that opens after three
// failures and probes after 200 ms. The server goes down for half a second
// and comes back on the same address. The run takes about a second and
// prints each call's outcome, runs of the same outcome folded into one line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

const (
	interval    = 20 * time.Millisecond  // between two checks
	outage      = 500 * time.Millisecond // how long the server is down
	openTimeout = 200 * time.Millisecond // how long the breaker stays open before it probes
)

func run(out io.Writer) error {
	srv, err := startServer("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { srv.Stop() }()
	addr := srv.addr

	checks := breaker.New("health", breaker.WithFailureThreshold(3), breaker.WithOpenTimeout(openTimeout))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect within milliseconds of the server's return, for the demo.
		// MinConnectTimeout must be given with the backoff: left zero, a
		// connection attempt would have no more time than the backoff delay.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithUnaryInterceptor(leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{
			breaker.Policy[any](checks),
			resilience.Timeout[any](time.Second),
		})),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	log := &foldingLog{out: out}
	defer log.flush()
	check := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		call := "call"
		if checks.State() == breaker.HalfOpen {
			call = "probe" // the one call a half-open breaker lets through
		}
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case errors.Is(err, breaker.ErrOpen):
			// A gRPC status error that also matches the levee error.
			log.print(fmt.Sprintf("rejected: %v, nothing sent", status.Code(err)), checks.State())
		case err != nil:
			log.print(fmt.Sprintf("%s failed: %v", call, status.Code(err)), checks.State())
		default:
			log.print(fmt.Sprintf("%s answered %v", call, resp.GetStatus()), checks.State())
		}
	}

	fmt.Fprintln(out, "-- the server is up")
	for range 5 {
		check()
		time.Sleep(interval)
	}

	log.flush()
	fmt.Fprintln(out, "-- the server goes down")
	srv.Stop()
	for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(interval) {
		check()
	}

	log.flush()
	fmt.Fprintln(out, "-- the server is back")
	if srv, err = startServer(addr); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(interval) {
		check()
		if checks.State() == breaker.Closed {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the breaker did not close within 10s of the server's return")
		}
	}
	for range 3 {
		time.Sleep(interval)
		check()
	}
	return nil
}

// server is a health server on a loopback address.
type server struct {
	*grpc.Server
	addr string
}

func startServer(addr string) (*server, error) {
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	return &server{Server: srv, addr: lis.Addr().String()}, nil
}

// foldingLog prints each outcome with the breaker's state after it, and a
// run of the same line once, with its count.
type foldingLog struct {
	out   io.Writer
	last  string
	count int
}

func (l *foldingLog) print(outcome string, state breaker.State) {
	line := fmt.Sprintf("%-36s breaker %s", outcome, state)
	if line == l.last {
		l.count++
		return
	}
	l.flush()
	l.last, l.count = line, 1
}

func (l *foldingLog) flush() {
	switch {
	case l.count == 1:
		fmt.Fprintln(l.out, l.last)
	case l.count > 1:
		fmt.Fprintf(l.out, "%s  (x%d)\n", l.last, l.count)
	}
	l.last, l.count = "", 0
}
