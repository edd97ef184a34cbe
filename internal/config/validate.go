package config

import "fmt"

// validator collects the problems Validate finds, positioned through the
// source of the document when there is one.
type validator struct {
	src  *source // nil for a configuration built in code
	errs []*FieldError
}

// add records a problem at path, unless decoding already reported one there.
func (v *validator) add(path, format string, args ...any) {
	fe := &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
	if v.src != nil {
		if v.src.suppressed(path) {
			return
		}
		p := v.src.lookup(path)
		fe.File, fe.Line, fe.Column = v.src.file, p.line, p.col
	}
	v.errs = append(v.errs, fe)
}

// bad reports whether the value at path (or around it) failed to decode and
// is a placeholder, so that cross-field checks such as duplicate detection
// skip it.
func (v *validator) bad(path string) bool {
	return v.src != nil && v.src.suppressed(path)
}
