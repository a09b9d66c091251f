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

// flakyServer is an httptest server whose status the test sets, counting
// the requests that reach it.
type flakyServer struct {
	*httptest.Server
	hits   atomic.Int64
	status atomic.Int64
	header sync.Map // extra response headers, name -> value
}

func newFlakyServer(t *testing.T) *flakyServer {
	t.Helper()
	s := &flakyServer{}
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		s.header.Range(func(k, v any) bool {
			w.Header().Set(k.(string), v.(string))
			return true
		})
		w.Header().Set("X-Served-By", "flaky")
		status := int(s.status.Load())
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(s.Close)
	return s
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
