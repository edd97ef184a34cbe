package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// DefaultStateDir holds one directory per lab: its state file, the BIRD
// configurations and control sockets, the node configurations and the logs.
const DefaultStateDir = "/run/anycastlab"

const stateFile = "state.json"

// State is what `anycastlab down` needs to remove a lab and `status` to
// show it. It is rewritten after every resource the lab creates, so a lab
// that failed halfway, or whose builder was killed, can still be removed.
type State struct {
	ID       string    `json:"id"`
	Dir      string    `json:"dir"`
	Created  time.Time `json:"created"`
	Ready    bool      `json:"ready"`
	Speakers bool      `json:"speakers"`           // BIRD stands in for the PoPs' BGP speakers
	Anycastd string    `json:"anycastd,omitempty"` // the binary running on the PoPs
	// Added are the PoPs added to the running lab (AddPoP), in order; their
	// links come after the topology's.
	Added      []AddedPoP      `json:"added,omitempty"`
	Topology   *Topology       `json:"topology"`
	Namespaces []string        `json:"namespaces"` // created, in order
	Processes  []ProcessRecord `json:"processes"`
	Links      []*Link         `json:"links"`
	// Cgroups are the cgroup directories of CPU quotas (SetCPUQuota).
	Cgroups []string `json:"cgroups,omitempty"`
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := filepath.Join(s.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// ReadState reads the state of lab id under stateDir.
func ReadState(stateDir, id string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, id, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read state of lab %s: %w", id, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode state of lab %s: %w", id, err)
	}
	return &s, nil
}

// ListLabs returns the ids of the labs that have a directory under
// stateDir, oldest first.
func ListLabs(stateDir string) ([]string, error) {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	type lab struct {
		id  string
		mod time.Time
	}
	var labs []lab
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		labs = append(labs, lab{e.Name(), info.ModTime()})
	}
	sort.Slice(labs, func(i, j int) bool { return labs[i].mod.Before(labs[j].mod) })
	ids := make([]string, len(labs))
	for i, l := range labs {
		ids[i] = l.id
	}
	return ids, nil
}
