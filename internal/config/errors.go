package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// ErrInvalid matches (with errors.Is) every error that reports a problem in
// the content of a configuration, as opposed to a failure to read it.
var ErrInvalid = errors.New("invalid configuration")

// maxErrors bounds how many problems one load reports; the rest are counted.
const maxErrors = 50

// FieldError is one problem in a configuration document.
type FieldError struct {
	File   string // file name as given to the loader; empty if unknown
	Line   int    // 1-based; 0 if unknown
	Column int    // 1-based; 0 if unknown
	Path   string // field path such as "bgp.peers[0].hold_time"; empty for the document itself
	Msg    string
}

// Error formats the problem as "file:line:column: path: message", leaving out
// the parts that are unknown.
func (e *FieldError) Error() string {
	var b []byte
	if e.File != "" {
		b = append(b, e.File...)
	}
	if e.Line > 0 {
		if len(b) > 0 {
			b = append(b, ':')
		}
		b = strconv.AppendInt(b, int64(e.Line), 10)
		if e.Column > 0 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Column), 10)
		}
	}
	if len(b) > 0 {
		b = append(b, ": "...)
	}
	if e.Path != "" {
		b = append(b, e.Path...)
		b = append(b, ": "...)
	}
	b = append(b, e.Msg...)
	return string(b)
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// joinErrors sorts problems by position (stable, so problems without a
// position keep the order they were found in), caps their number and joins
// them. It returns nil for no problems.
func joinErrors(file string, list []*FieldError) error {
	if len(list) == 0 {
		return nil
	}
	slices.SortStableFunc(list, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	n := min(len(list), maxErrors)
	errs := make([]error, 0, n+1)
	for _, e := range list[:n] {
		errs = append(errs, e)
	}
	if rest := len(list) - n; rest > 0 {
		errs = append(errs, &FieldError{File: file, Msg: fmt.Sprintf("%d more problems not shown", rest)})
	}
	return errors.Join(errs...)
}
