package leveehttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// flaky is a handler whose status the test sets, counting the requests
// that reach it.
type flaky struct {
	hits   atomic.Int64
	status atomic.Int64
	header sync.Map // extra response headers, name -> value
}

func newFlaky() *flaky {
	f := &flaky{}
	f.status.Store(http.StatusOK)
	return f
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	f.header.Range(func(k, v any) bool {
		w.Header().Set(k.(string), v.(string))
		return true
	})
	w.Header().Set("X-Served-By", "flaky")
	status := int(f.status.Load())
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status))
}

// flakyServer is a flaky handler behind an httptest server.
type flakyServer struct {
	*httptest.Server
	*flaky
}

func newFlakyServer(t *testing.T) *flakyServer {
	t.Helper()
	s := &flakyServer{flaky: newFlaky()}
	s.Server = httptest.NewServer(s.flaky)
	t.Cleanup(s.Close)
	return s
}

// inMemory is an http.RoundTripper that serves each request with a handler
// in memory, through an httptest.ResponseRecorder: no socket, so that a
// Transport test can run in a synctest bubble and let a breaker's open
// timeout pass exactly.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(req *http.Request) (*http.Response, error) {
	served := req.Clone(req.Context())
	if served.Body == nil {
		served.Body = http.NoBody // a server's request always has a body
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, served)
	if req.Body != nil {
		req.Body.Close() // as RoundTrip's contract asks
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// baseTransport returns a transport of the test's own, whose idle
// connections are closed when the test ends.
func baseTransport(t *testing.T) *http.Transport {
	t.Helper()
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return base
}

// closeCounter is a RoundTripper that counts how often the bodies of the
// responses it returns are closed.
type closeCounter struct {
	next   http.RoundTripper
	closes atomic.Int64
	bodies atomic.Int64
}

func (c *closeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c.bodies.Add(1)
	resp.Body = &countedBody{ReadCloser: resp.Body, closes: &c.closes}
	return resp, nil
}

func (c *closeCounter) CloseIdleConnections() {
	c.next.(interface{ CloseIdleConnections() }).CloseIdleConnections()
}

type countedBody struct {
	io.ReadCloser
	closes *atomic.Int64
}

func (b *countedBody) Close() error {
	b.closes.Add(1)
	return b.ReadCloser.Close()
}

// spyBody is a request body that records reads and closes.
type spyBody struct {
	reads  atomic.Int64
	closes atomic.Int64
	r      io.Reader
}

func (b *spyBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.r.Read(p)
}

func (b *spyBody) Close() error {
	b.closes.Add(1)
	return nil
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "reading the body")
	require.NoError(t, resp.Body.Close(), "closing the body")
	return string(data)
}
