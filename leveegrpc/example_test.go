package leveegrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

// A client whose breaker opens after two failed calls: the caller sees
// gRPC's UNAVAILABLE while the server is down, then fast rejections, still
// UNAVAILABLE, that never leave the process.
func ExampleUnaryClientInterceptor() {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)

	api := breaker.New("api", breaker.WithFailureThreshold(2))
	conn, _ := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{breaker.Policy[any](api)})),
	)
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	check := func() {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		switch {
		case errors.Is(err, breaker.ErrOpen):
			fmt.Println("rejected:", status.Code(err), "- the breaker is", api.State())
		case err != nil:
			fmt.Println("failed:", status.Code(err))
		default:
			fmt.Println(resp.GetStatus())
		}
	}
	check()
	srv.Stop() // the server goes down
	check()
	check()
	check()
	// Output:
	// SERVING
	// failed: Unavailable
	// failed: Unavailable
	// rejected: Unavailable - the breaker is open
}

// failingHealth is a health service whose checks fail.
type failingHealth struct {
	healthpb.UnimplementedHealthServer
	calls int
}

func (h *failingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.calls++
	return nil, status.Error(codes.Internal, "database unreachable")
}

// A server sheds load while its handler fails: once the breaker opens,
// calls get UNAVAILABLE and a pushback trailer without reaching the
// handler.
func ExampleUnaryServerInterceptor() {
	checks := breaker.New("checks", breaker.WithFailureThreshold(1)) // open timeout: 30s
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(
		leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{breaker.Policy[any](checks)})))
	handler := &failingHealth{}
	healthpb.RegisterHealthServer(srv, handler)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	for range 2 {
		var trailer metadata.MD
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
		s := status.Convert(err)
		fmt.Printf("%v: %s (pushback: %v)\n", s.Code(), s.Message(), len(trailer.Get(leveegrpc.PushbackKey)) == 1)
	}
	fmt.Println("handler calls:", handler.calls)
	// Output:
	// Internal: database unreachable (pushback: false)
	// Unavailable: levee: rejected: circuit_open (pushback: true)
	// handler calls: 1
}
