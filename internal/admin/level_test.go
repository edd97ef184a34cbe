package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// fakeLeveler is a node whose level an operator can pin.
type fakeLeveler struct {
	*fakeBackend
	pinErr error
}

func (f *fakeLeveler) PinLevel(_ context.Context, l level.Level, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("pin %v %q", l, reason))
	if f.pinErr != nil {
		return f.pinErr
	}
	f.st.Level = &admin.Level{Level: l, Source: admin.SourceOperator, Reason: reason, Pin: &admin.LevelSetting{Level: l, Reason: reason, Since: t0}}
	return nil
}

func (f *fakeLeveler) UnpinLevel(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "unpin")
	f.st.Level = &admin.Level{Level: level.Normal, Source: admin.SourceDefault}
	return nil
}

func TestPinUnpin(t *testing.T) {
	f := &fakeLeveler{fakeBackend: newFake()}
	srv := httptest.NewServer(admin.Handler(f, nil))
	defer srv.Close()
	c := admin.NewClient(srv.URL, srv.Client())

	st, err := c.PinLevel(t.Context(), level.Shed3, "rack upgrade, ticket #42")
	if err != nil {
		t.Fatal(err)
	}
	want := &admin.Level{Level: level.Shed3, Source: admin.SourceOperator, Reason: "rack upgrade, ticket #42",
		Pin: &admin.LevelSetting{Level: level.Shed3, Reason: "rack upgrade, ticket #42", Since: t0}}
	if d := cmp.Diff(want, st.Level); d != "" {
		t.Errorf("status after the pin (-want +got):\n%s", d)
	}
	st, err = c.UnpinLevel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Level == nil || st.Level.Level != level.Normal || st.Level.Pin != nil {
		t.Errorf("status after the unpin: %+v", st.Level)
	}
	if _, err := c.PinLevel(t.Context(), level.Withdrawn, ""); err != nil {
		t.Errorf("pin withdrawn without a reason: %v", err)
	}
	if d := cmp.Diff([]string{`pin shed-3 "rack upgrade, ticket #42"`, "unpin", `pin withdrawn ""`}, f.Calls()); d != "" {
		t.Errorf("backend calls (-want +got):\n%s", d)
	}

	f.pinErr = fmt.Errorf("this node has no BGP configured: %w", admin.ErrConflict)
	if _, err := c.PinLevel(t.Context(), level.Shed1, "x"); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("pin on a node without BGP: %v, want ErrConflict", err)
	}
}

func TestPinRequestErrors(t *testing.T) {
	long := strings.Repeat("x", admin.MaxReasonLen+1)
	for _, tc := range []struct {
		name, method, body, ctype string
		wantCode                  int
		wantError                 string
		wantAllow                 string
	}{
		{name: "control source refused", method: "POST", body: `{"level": "shed-2", "reason": "x", "source": "control"}`,
			wantCode: 400, wantError: `body: json: unknown field "source"`},
		{name: "no level", method: "POST", body: `{"reason": "x"}`,
			wantCode: 400, wantError: `body: "level" is required (normal, shed-1, shed-2, shed-3, withdrawn)`},
		{name: "unknown level", method: "POST", body: `{"level": "shed-4"}`,
			wantCode: 400, wantError: `body: level: unknown level "shed-4" (want one of normal, shed-1, shed-2, shed-3, withdrawn)`},
		{name: "level not a string", method: "POST", body: `{"level": 2}`, wantCode: 400},
		{name: "empty body", method: "POST", body: ``,
			wantCode: 400, wantError: `empty body: want {"level": "shed-1", "reason": "..."}`},
		{name: "two values", method: "POST", body: `{"level": "normal"} {}`, wantCode: 400, wantError: "body: more than one JSON value"},
		{name: "reason too long", method: "POST", body: `{"level": "normal", "reason": "` + long + `"}`,
			wantCode: 400, wantError: "body: reason is 201 bytes, at most 200"},
		{name: "reason with a newline", method: "POST", body: `{"level": "normal", "reason": "a\nb"}`,
			wantCode: 400, wantError: "body: reason holds the control character U+000A"},
		{name: "form body", method: "POST", body: `level=shed-1`, ctype: "application/x-www-form-urlencoded",
			wantCode: 415, wantError: `content type "application/x-www-form-urlencoded", want application/json`},
		{name: "get", method: "GET", wantCode: 405, wantAllow: "POST, DELETE", wantError: "method GET not allowed on /v1/level, use POST or DELETE"},
		{name: "pin", method: "POST", body: `{"level": "shed-1", "reason": "maintenance"}`, wantCode: 200},
		{name: "unpin", method: "DELETE", wantCode: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLeveler{fakeBackend: newFake()}
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:8053/v1/level", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			admin.Handler(f, nil).ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Errorf("code %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
			if called := len(f.Calls()) > 0; called != (tc.wantCode == 200) {
				t.Errorf("backend called: %v (%q)", called, f.Calls())
			}
			if tc.wantCode == 200 {
				return
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
			if body.Error == "" || tc.wantError != "" && body.Error != tc.wantError {
				t.Errorf("error %q, want %q", body.Error, tc.wantError)
			}
		})
	}
	t.Run("not a leveler", func(t *testing.T) {
		rec := httptest.NewRecorder()
		admin.Handler(newFake(), nil).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8053/v1/level", strings.NewReader(`{"level":"normal"}`)))
		if rec.Code != http.StatusNotFound {
			t.Errorf("code %d, want 404", rec.Code)
		}
	})
	t.Run("cross-origin", func(t *testing.T) {
		f := &fakeLeveler{fakeBackend: newFake()}
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8053/v1/level", strings.NewReader(`{"level":"withdrawn"}`))
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		rec := httptest.NewRecorder()
		admin.Handler(f, nil).ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || len(f.Calls()) > 0 {
			t.Errorf("code %d, calls %q; want 403 and no call", rec.Code, f.Calls())
		}
	})
}
