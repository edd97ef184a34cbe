package level

import (
	"fmt"
	"strings"
)

// Names lists the levels as Parse accepts them, in order.
var Names = []string{"normal", "shed-1", "shed-2", "shed-3", "withdrawn"}

// Valid reports whether l is one of the five levels.
func (l Level) Valid() bool { return l >= Normal && l <= Withdrawn }

// Parse returns the level named s: normal, shed-1, shed-2, shed-3 or
// withdrawn.
func Parse(s string) (Level, error) {
	for i, n := range Names {
		if s == n {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want one of %s)", s, strings.Join(Names, ", "))
}

// MarshalText implements encoding.TextMarshaler: the level's name.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("marshal %v: not a level", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with Parse.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
