package testkit

import (
	"net/http"
	"testing"
	"time"
)

// WaitHTTP waits until url answers at all (any status), each request given
// a second, and fails the test after limit.
func WaitHTTP(t testing.TB, url string, limit time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not answering after %v", url, limit)
}
