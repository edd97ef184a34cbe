package zone

import (
	"strings"
	"testing"
)

func setZone(t *testing.T, origin string) *Zone {
	t.Helper()
	text := "$ORIGIN " + origin + "\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.1\n"
	rs, err := Parse(strings.NewReader(text), origin, "test")
	if err != nil {
		t.Fatal(err)
	}
	z, err := Build(origin, rs)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestSetExpired: WithExpired keeps a zone findable but marked; With (a
// new version) clears the mark, Without drops it, and the marks of the
// other zones follow every copy.
func TestSetExpired(t *testing.T) {
	a, b, c := setZone(t, "a.example."), setZone(t, "b.example."), setZone(t, "c.example.")
	s := NewSet(a).WithExpired(b, c)
	if s.Len() != 3 || s.ExpiredLen() != 2 {
		t.Fatalf("Len %d ExpiredLen %d, want 3 and 2", s.Len(), s.ExpiredLen())
	}
	name, _ := NameWire("www.b.example.")
	if z := s.Find(name); z != b || !s.Expired(z) {
		t.Errorf("Find(www.b.example.) = %v expired %v, want b.example. expired", z, s.Expired(z))
	}
	if s.Expired(a) || s.Get("a.example.") != a {
		t.Error("a.example. expired or missing")
	}
	renewed := s.With(b)
	if renewed.Expired(b) || !renewed.Expired(c) || renewed.ExpiredLen() != 1 {
		t.Errorf("after With(b): b expired %v, c expired %v", renewed.Expired(b), renewed.Expired(c))
	}
	gone := s.Without(c.OriginWire())
	if gone.Get("c.example.") != nil || gone.Expired(c) || !gone.Expired(b) {
		t.Errorf("after Without(c): c present %v expired %v, b expired %v", gone.Get("c.example.") != nil, gone.Expired(c), gone.Expired(b))
	}
	if s.ExpiredLen() != 2 || !s.Expired(b) {
		t.Error("the original set changed")
	}
	var none *Set
	if none.Expired(a) || none.ExpiredLen() != 0 || NewSet(a).Expired(a) {
		t.Error("nil or plain set reports an expired zone")
	}
	if got := none.WithExpired(a); !got.Expired(a) || got.Len() != 1 {
		t.Error("WithExpired on a nil set")
	}
}
