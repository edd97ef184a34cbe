package zonesync

import (
	"sync"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// persister writes a zone's versions to the data directory, one at a time
// and newest wins: a version that a newer one replaced before it was
// written is never written. A refresh waits for its version to be on disk
// before it ends (a large zone's does not: waitMaxRecords); a pushed
// version does not, so that a slow disk (an fsync
// of tens of milliseconds under load) never holds up the next change the
// stream brings: the new version is served the moment it is installed,
// and a crash before it is written only makes the node resume from the
// version before it.
type persister struct {
	mu      sync.Mutex
	cond    sync.Cond // on mu: done moved
	job     *persistJob
	gen     uint64 // of the newest job queued
	done    uint64 // gen of the newest job written (or given up on)
	running bool
	wg      sync.WaitGroup
}

type persistJob struct {
	z   *zone.Zone
	st  state
	gen uint64
}

// waitMaxRecords: a refresh does not wait for the version of a zone of
// more records to be written (about journalMinZone of master file). Such
// a version goes to the journal in a moment, but one from an AXFR is
// written whole, which takes seconds (the 1,000,000-name zone: a 109 MB
// file, 3-7 s): the next NOTIFY's refresh, the first change after the
// load, waited for it.
const waitMaxRecords = 20_000

// persist queues z with its state; with wait it returns once that version
// (or a newer one) has been written, unless z has more than waitMaxRecords
// records.
func (s *secondary) persist(z *zone.Zone, st state, wait bool) {
	wait = wait && z.Records <= waitMaxRecords
	p := &s.persister
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cond.L == nil {
		p.cond.L = &p.mu
	}
	p.gen++
	gen := p.gen
	p.job = &persistJob{z: z, st: st, gen: gen}
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go s.persistLoop()
	}
	for wait && p.done < gen {
		p.cond.Wait()
	}
}

func (s *secondary) persistLoop() {
	p := &s.persister
	defer p.wg.Done()
	for {
		p.mu.Lock()
		j := p.job
		p.job = nil
		if j == nil {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		s.write(j)
		p.mu.Lock()
		p.done = j.gen
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// waitPersisted waits until nothing is left to write (the zone's loop has
// stopped, so nothing new comes).
func (s *secondary) waitPersisted() { s.persister.wg.Wait() }

// write puts one version on disk: the state alone when the disk already
// holds that version; the change from the version on disk appended to the
// zone's journal and the state, when the journal may take it
// (journalFits); else the zone file and its state.
func (s *secondary) write(j *persistJob) {
	m := s.m
	s.mu.Lock()
	onDisk, sum, records, fileBytes, journalBytes := s.savedZone, s.fileSum, s.fileRecords, s.fileBytes, s.journalBytes
	s.mu.Unlock()
	j.st.SHA256, j.st.Records = sum, records
	if onDisk == j.z {
		if err := m.store.saveState(j.st); err != nil {
			m.met.persistErrors.Inc()
			m.log.Error("persisting zone state failed", "zone", s.name, "err", err)
		}
		return
	}
	if m.store.journalFits(sum, fileBytes, journalBytes) && j.z.Derived(onDisk) {
		del, add := zone.DiffWire(onDisk, j.z)
		n, err := m.store.appendJournal(s.name, sum, onDisk.Serial, j.z.Serial, del, add, journalBytes == 0)
		if err == nil {
			err = m.store.saveState(j.st)
		}
		if err == nil {
			s.mu.Lock()
			s.savedZone, s.journalBytes = j.z, journalBytes+n
			s.mu.Unlock()
			return
		}
		m.log.Warn("appending the change to the zone's journal failed; writing the whole zone", "zone", s.name, "serial", j.z.Serial, "err", err)
	}
	saved, err := m.store.save(j.z, j.st)
	if err != nil {
		m.met.persistErrors.Inc()
		m.log.Error("persisting zone failed; the new version is served but a restart loads the previous one", "zone", s.name, "serial", j.z.Serial, "err", err)
		return
	}
	s.mu.Lock()
	s.savedZone, s.fileSum, s.fileRecords = j.z, saved.SHA256, saved.Records
	s.fileBytes, s.journalBytes = saved.FileBytes, 0
	s.mu.Unlock()
}
