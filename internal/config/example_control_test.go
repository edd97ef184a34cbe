package config

import "testing"

// The shipped example of the control configuration must stay valid.
func TestExampleControl(t *testing.T) {
	c, err := LoadControl("../../examples/control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Xfr.Catalog == nil || len(c.Xfr.Notify) != 2 || len(c.API.Tokens) != 1 {
		t.Errorf("example decoded unexpectedly: %+v", c)
	}
}
