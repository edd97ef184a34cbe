package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPutRRset measures one write through the API, end to end: HTTP
// over loopback, JSON, validation of the whole zone, the SQLite transaction
// with its fsync. Each write changes the RRset, so each one commits. It
// reports the latency percentiles of the writes.
func BenchmarkPutRRset(b *testing.B) {
	for _, size := range []int{10, 1000} {
		b.Run(fmt.Sprintf("zone=%d", size), func(b *testing.B) {
			srv := benchZone(b, size)
			client := srv.Client()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				start := time.Now()
				put(b, client, srv.URL, "bench", i)
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat)
		})
	}
}

// BenchmarkPutRRsetParallel measures write throughput with concurrent
// clients, each writing its own RRset.
func BenchmarkPutRRsetParallel(b *testing.B) {
	srv := benchZone(b, 10)
	var n atomic.Int64
	b.SetParallelism(4) // 4 clients per CPU
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		client := srv.Client()
		name := fmt.Sprintf("c%d", n.Add(1))
		i := 0
		for pb.Next() {
			i++
			put(b, client, srv.URL, name, i)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

func benchZone(b *testing.B, size int) *httptest.Server {
	srv, _ := server(b, 0)
	var recs strings.Builder
	recs.WriteString(`{"name":"example.com","records":["@ 3600 IN SOA ns1 h 1 7200 3600 1209600 300","@ NS ns1","ns1 A 192.0.2.1"`)
	for i := range size {
		fmt.Fprintf(&recs, `,"h%d 300 IN A 192.0.2.%d"`, i, i%250)
	}
	recs.WriteString("]}")
	if resp, body := do(b, srv.URL, call{method: "POST", path: "/v1/zones", body: recs.String()}); resp.StatusCode != 201 {
		b.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return srv
}

func put(b *testing.B, client *http.Client, base, name string, i int) {
	body := fmt.Sprintf(`{"ttl":60,"records":["192.0.2.%d","192.0.2.%d"]}`, i%250, (i+1)%250)
	req, err := http.NewRequest("PUT", base+"/v1/zones/example.com/rrsets/"+name+"/A", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("PUT: %d", resp.StatusCode)
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
