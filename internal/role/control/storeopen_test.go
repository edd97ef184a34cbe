package control

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// TestRunOnPostgres: store.postgres in the configuration puts the zones in
// PostgreSQL, and two control planes on one database are replicas: a zone
// created through one and changed through the other is seen at once by
// both, with the same serial.
func TestRunOnPostgres(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var planes [2]*Control
	var clients [2]*apiclient.Client
	errc := make(chan error, 2)
	for i := range planes {
		cfg := testConfig(t)
		cfg.Store = config.Store{Postgres: &config.StorePostgres{DSN: dsn}}
		c, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		go func() { errc <- c.Run(ctx, nil) }()
		select {
		case <-c.Ready():
		case err := <-errc:
			t.Fatal(err)
		}
		planes[i] = c
		if clients[i], err = apiclient.New("http://"+c.APIAddr().String(), token, nil); err != nil {
			t.Fatal(err)
		}
	}
	events, stop := planes[0].Store().Subscribe()
	defer stop()
	if _, err := clients[0].CreateZone(ctx, api.CreateZone{Name: "example.com", Records: zoneRecords}); err != nil {
		t.Fatal(err)
	}
	rr, err := dns.NewRR("www.example.com. 60 IN A 192.0.2.80")
	if err != nil {
		t.Fatal(err)
	}
	serial, err := planes[1].Store().SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, []dns.RR{rr})
	if err != nil {
		t.Fatalf("write through the second replica: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-events:
			got = ev.Zone == "example.com." && ev.Serial == serial
		case <-deadline:
			t.Fatalf("the first replica got no event of serial %d written by the second", serial)
		}
	}
	if rrs, err := planes[0].Store().RRset(ctx, "example.com.", "www.example.com.", dns.TypeA); err != nil || len(rrs) != 1 {
		t.Fatalf("first replica after the event: %v %v", rrs, err)
	}
	cancel()
	for range planes {
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
