package lab

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// The PostgreSQL of a lab whose control plane runs several replicas
// (Options.ControlReplicas): the Debian binaries started as the tests
// start them (pgtest.Launch: initdb in a temporary directory as an
// unprivileged user, listening only on a Unix socket there). The replicas
// reach it from their namespaces through that socket, since network
// namespaces share the filesystem. Down stops it by its PID and removes
// its directory; a lab torn down from its state file alone (anycastlab
// down after the builder died) has lost it with the builder, since
// PostgreSQL is started to die with the thread that started it.

// labPostgres is the lab's running PostgreSQL.
type labPostgres struct {
	srv  *pgtest.Server
	stop chan struct{}
	done chan error
	once sync.Once
	err  error
}

// launchPostgres starts PostgreSQL from a goroutine that keeps its
// thread to itself until Stop: pgtest starts the server with a parent
// death signal (so that it never outlives the process that started it),
// which Linux sends when the starting thread ends, and the lab's other
// goroutines end threads of theirs (the namespace switches).
func launchPostgres() (*labPostgres, error) {
	lp := &labPostgres{stop: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		srv, err := pgtest.Launch(pgtest.Options{})
		if err != nil {
			started <- err
			return
		}
		lp.srv = srv
		started <- nil
		<-lp.stop
		lp.done <- srv.Stop()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	return lp, nil
}

// DSN is the connection string of the replicas' database.
func (p *labPostgres) DSN() string { return p.srv.DSN("postgres") }

// Stop stops the server (by its PID) and removes its directory.
func (p *labPostgres) Stop() error {
	p.once.Do(func() {
		close(p.stop)
		p.err = <-p.done
	})
	return p.err
}

// startPostgres is Up's step that starts the replicas' PostgreSQL, before
// the configurations that name it are written.
func (l *Lab) startPostgres(context.Context) (string, error) {
	pg, err := launchPostgres()
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.pg = pg
	l.mu.Unlock()
	l.ctl.DSN = pg.DSN()
	return fmt.Sprintf("PostgreSQL (pid %d) on the Unix socket in %s, data in %s", pg.srv.Pid(), pg.srv.Socket, pg.srv.Dir), nil
}

// PostgresDSN is the connection string of the control plane's replicas'
// database; empty when they run on SQLite.
func (l *Lab) PostgresDSN() string {
	if l.ctl == nil {
		return ""
	}
	return l.ctl.DSN
}
