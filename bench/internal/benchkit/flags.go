package benchkit

import (
	"fmt"
	"slices"
	"strings"
)

// PickNames reads a comma-separated flag value of names out of known (the
// servers or stores a tool can run) and returns the chosen ones once each,
// in known's order, so that runs are comparable. Unknown names and an empty
// choice are errors naming the flag and what it lists ("-only: unknown
// server %q (want a, b)", "-only: no server").
func PickNames(flagName, what, value string, known []string) ([]string, []error) {
	var picked []string
	var errs []error
	for s := range strings.SplitSeq(value, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case !slices.Contains(known, s):
			errs = append(errs, fmt.Errorf("-%s: unknown %s %q (want %s)", flagName, what, s, strings.Join(known, ", ")))
		case !slices.Contains(picked, s):
			picked = append(picked, s)
		}
	}
	slices.SortFunc(picked, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	if len(picked) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("-%s: no %s", flagName, what))
	}
	return picked, errs
}
