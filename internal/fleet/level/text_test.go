package level

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseAndText(t *testing.T) {
	for l := Normal; l <= Withdrawn; l++ {
		got, err := Parse(l.String())
		if err != nil || got != l {
			t.Errorf("Parse(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
		b, err := json.Marshal(struct{ L Level }{l})
		if err != nil {
			t.Fatalf("marshal %v: %v", l, err)
		}
		var back struct{ L Level }
		if err := json.Unmarshal(b, &back); err != nil || back.L != l {
			t.Errorf("round trip of %s: %v, %v", b, back.L, err)
		}
	}
	for _, bad := range []string{"", "Normal", "shed-0", "shed-4", "shed1", "withdraw", " normal"} {
		if l, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, l)
		} else if !strings.Contains(err.Error(), "want one of normal, shed-1, shed-2, shed-3, withdrawn") {
			t.Errorf("Parse(%q) error %q does not list the levels", bad, err)
		}
	}
	if _, err := json.Marshal(Level(7)); err == nil {
		t.Error("marshal of level(7) succeeded")
	}
	var l Level
	if err := json.Unmarshal([]byte(`"shed-9"`), &l); err == nil {
		t.Error(`unmarshal of "shed-9" succeeded`)
	}
}
