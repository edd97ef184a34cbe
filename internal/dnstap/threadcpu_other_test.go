//go:build !linux

package dnstap

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
