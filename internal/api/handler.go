package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Backend is what the API serves: the zone store. Its errors are
// classified with errors.Is against ErrNotFound, ErrExists, ErrConflict,
// ErrInvalid and ErrUnavailable (Mark attaches a class to an error); any other error is a
// 500 whose message is logged, not sent. An error returned by the function
// given to UpdateRRset must come back unchanged.
type Backend interface {
	ListZones(ctx context.Context) ([]ZoneInfo, error)
	// Zone returns the description and content of one version of a zone.
	Zone(ctx context.Context, name string) (ZoneInfo, *zone.Zone, error)
	CreateZone(ctx context.Context, name string, rrs []dns.RR, policy string) (ZoneInfo, error)
	CreateZoneText(ctx context.Context, name string, text io.Reader, policy string) (ZoneInfo, error)
	DeleteZone(ctx context.Context, name string) error
	ImportZone(ctx context.Context, name string, text io.Reader) (ZoneInfo, error)
	RRset(ctx context.Context, zone, name string, t uint16) ([]dns.RR, error)
	// UpdateRRset replaces the RRset with what fn returns (nothing
	// deletes it), atomically, and returns the zone's serial and the
	// RRset as stored.
	UpdateRRset(ctx context.Context, zone, name string, t uint16, fn func(cur []dns.RR) ([]dns.RR, error)) (uint32, []dns.RR, error)
}

// Classes of Backend errors.
var (
	ErrNotFound     = errors.New("not found")           // 404
	ErrExists       = errors.New("already exists")      // 409
	ErrConflict     = errors.New("conflict")            // 409: the change cannot be made to the zone as it is
	ErrInvalid      = errors.New("invalid")             // 400
	ErrUnavailable  = errors.New("unavailable")         // 503
	errPrecondition = errors.New("precondition failed") // 412
)

// Mark returns err classified as kind: errors.Is(Mark(err, kind), kind)
// holds, errors.Is still sees err's own chain, and the message is err's.
func Mark(err, kind error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, kind: kind}
}

type marked struct{ err, kind error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

func badRequest(format string, args ...any) error {
	return Mark(fmt.Errorf(format, args...), ErrInvalid)
}

// Config configures the handler.
type Config struct {
	// Tokens may use the API ("Authorization: Bearer TOKEN"); with none,
	// every request is refused.
	Tokens []string
	// MaxBody bounds request bodies in bytes (default 32 MiB); larger
	// ones get 413.
	MaxBody int64
	// Fleet is the registry of the nodes (GET /v1/fleet and the fleet
	// page); nil = none.
	Fleet Fleet
	// SigningPolicies returns the signing policy of a name (dnssec.go);
	// nil = only "default", sign.DefaultPolicy.
	SigningPolicies func(name string) (sign.Policy, bool)
}

// DefaultMaxBody is the body limit when Config.MaxBody is 0.
const DefaultMaxBody = 32 << 20

type handler struct {
	b       Backend
	tokens  [][sha256.Size]byte
	maxBody int64
	log     *slog.Logger
	mux     *http.ServeMux
	fleet   Fleet
	page    http.Handler // the fleet page, nil without a fleet
	// policies names the signing policies (Config.SigningPolicies).
	policies func(name string) (sign.Policy, bool)
}

// Handler returns the API over b.
func Handler(b Backend, cfg Config, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, maxBody: cfg.MaxBody, log: logger.With("component", "api"), mux: http.NewServeMux(), fleet: cfg.Fleet,
		policies: cfg.SigningPolicies}
	if cfg.Fleet != nil {
		h.page = fleet.PageHandler()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	for _, t := range cfg.Tokens {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
	}
	for _, rt := range h.routes() {
		h.mux.HandleFunc(rt.pattern, h.methods(rt.methods))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
	})
	return h
}

// handlerFunc serves one method of an endpoint, or returns an error for
// the caller to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one path of the API with the handlers of its methods.
type route struct {
	pattern string
	methods map[string]handlerFunc
}

// routes is every endpoint of the API. docs/api.md documents each of them,
// which a test checks.
func (h *handler) routes() []route {
	return []route{
		{PathZones, map[string]handlerFunc{"GET": h.listZones, "POST": h.createZone}},
		{PathZones + "/{zone}", map[string]handlerFunc{"GET": h.showZone, "DELETE": h.deleteZone}},
		{PathZones + "/{zone}/zonefile", map[string]handlerFunc{"GET": h.exportZone, "PUT": h.importZone}},
		{PathZones + "/{zone}/rrsets", map[string]handlerFunc{"GET": h.listRRsets}},
		{PathZones + "/{zone}/rrsets/{name}/{type}", map[string]handlerFunc{"GET": h.getRRset, "PUT": h.putRRset, "DELETE": h.deleteRRset}},
		{PathZones + "/{zone}/dnssec", map[string]handlerFunc{"GET": h.getDNSSEC, "PUT": h.putDNSSEC}},
		{PathZones + "/{zone}/dnssec/ds-seen", map[string]handlerFunc{"POST": h.dsSeen}},
		{PathZones + "/{zone}/pools", map[string]handlerFunc{"GET": h.listPools}},
		{PathZones + "/{zone}/pools/{name}/{type}", map[string]handlerFunc{"GET": h.getPool, "PUT": h.putPool, "DELETE": h.deletePool}},
		{PathBackup, map[string]handlerFunc{"GET": h.backup}},
		{PathRestore, map[string]handlerFunc{"POST": h.restore}},
		{PathFleet, map[string]handlerFunc{"GET": h.fleetView}},
		{PathFleet + "/{node}", map[string]handlerFunc{"DELETE": h.fleetForget}},
		{PathFleet + "/{node}/revoke", map[string]handlerFunc{"POST": h.fleetRevoke, "DELETE": h.fleetUnrevoke}},
		{fleet.PathObservations, map[string]handlerFunc{"POST": h.fleetObserve}},
		{PathFleet + "/pops/{pop}/pin", map[string]handlerFunc{"PUT": h.fleetPin, "DELETE": h.fleetUnpin}},
	}
}

type ctxKey struct{}

// request is what the middleware learns about a request, for the log.
type request struct {
	token  int // 1-based index of the token used
	serial uint32
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.page != nil && fleet.IsPage(r.URL.Path) {
		// The page holds no data: it asks the operator for the token
		// and reads GET /v1/fleet with it.
		h.page.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	token := h.authenticate(r)
	if token == 0 {
		h.log.Warn("api request refused: no valid token", "method", r.Method, "path", r.URL.Path, "remote_addr", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="anycastdns"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token (Authorization: Bearer TOKEN)")
		return
	}
	req := &request{token: token}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, req))
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	rec := &statusRecorder{ResponseWriter: w}
	h.mux.ServeHTTP(rec, r)
	level := slog.LevelDebug
	switch {
	case rec.status >= http.StatusInternalServerError:
		level = slog.LevelError
	case r.URL.Path == fleet.PathObservations && rec.status < http.StatusBadRequest:
		// The monitors report every round: not an operator's write.
	case r.Method != http.MethodGet && rec.status < http.StatusBadRequest:
		level = slog.LevelInfo // the audit trail of writes
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "token", req.token,
		"remote_addr", r.RemoteAddr, "duration", time.Since(start)}
	if req.serial != 0 {
		attrs = append(attrs, "serial", req.serial)
	}
	h.log.Log(r.Context(), level, "api request", attrs...)
}

// authenticate returns the 1-based index of the bearer token of r, 0 if it
// has none that is configured. Every configured token is compared, in
// constant time over hashes of equal length.
func (h *handler) authenticate(r *http.Request) int {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return 0
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	found := 0
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i][:]) == 1 {
			found = i + 1
		}
	}
	return found
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// methods dispatches on the method; others get 405 with Allow.
func (h *handler) methods(m map[string]handlerFunc) http.HandlerFunc {
	allowed := make([]string, 0, len(m))
	for _, k := range []string{"GET", "POST", "PUT", "DELETE"} {
		if m[k] != nil {
			allowed = append(allowed, k)
		}
	}
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		f := m[r.Method]
		if f == nil {
			w.Header().Set("Allow", allow)
			msg := fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
			if r.URL.Path == PathZones {
				// What remains of /v1/zones/. once "." is taken for
				// "this directory".
				msg += "; the root zone is " + ZonePath(".")
			}
			writeError(w, http.StatusMethodNotAllowed, msg)
			return
		}
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	}
}

// fail writes err with the status its class gives.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
		return
	case errors.Is(err, errUnsupportedMedia):
		code = http.StatusUnsupportedMediaType
	case errors.Is(err, errPrecondition):
		code = http.StatusPreconditionFailed
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusInternalServerError {
		h.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, code, "internal error (logged by the server)")
		return
	}
	writeError(w, code, err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(Error{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", MediaJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

var errUnsupportedMedia = errors.New("unsupported media type")

// mediaType returns the request's media type, "" when there is none.
func mediaType(r *http.Request) (string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type %q", errUnsupportedMedia, ct)
	}
	return mt, nil
}

// requireMedia checks that the body is one of the media types (or has none).
func requireMedia(r *http.Request, types ...string) (string, error) {
	mt, err := mediaType(r)
	if err != nil {
		return "", err
	}
	if mt == "" {
		return types[0], nil
	}
	for _, t := range types {
		if mt == t {
			return mt, nil
		}
	}
	return "", fmt.Errorf("%w: %s (want %s)", errUnsupportedMedia, mt, strings.Join(types, " or "))
}

func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(r.Body)
}

// decodeJSON decodes exactly one JSON value with no unknown fields.
func decodeJSON(data []byte, v any) error { return decodeJSONWith(data, v, true) }

// readJSON reads a request whose body must be JSON into v, strictly
// (decodeJSON): the media type, the body and its decoding, each refused
// with the error the API answers.
func readJSON(r *http.Request, v any) error {
	if _, err := requireMedia(r, MediaJSON); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// decodeJSONWith is decodeJSON, refusing unknown fields only when strict.
func decodeJSONWith(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return badRequest("%s: expected %s, got a JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)
		case errors.As(err, &se):
			return badRequest("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
		case errors.Is(err, io.EOF):
			return badRequest("empty body (want JSON)")
		}
		return badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON: more after the first value")
	}
	return nil
}

func jsonKind(goType string) string {
	goType = strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case goType == "string":
		return "a string"
	case strings.Contains(goType, "int"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

func requestInfo(r *http.Request) *request {
	if req, ok := r.Context().Value(ctxKey{}).(*request); ok {
		return req
	}
	return &request{}
}

// zoneParam is the canonical zone name of the path.
func zoneParam(r *http.Request) (string, error) {
	z, err := CanonicalZone(r.PathValue("zone"))
	if err != nil {
		return "", Mark(err, ErrInvalid)
	}
	return z, nil
}

func (h *handler) listZones(w http.ResponseWriter, r *http.Request) error {
	zones, err := h.b.ListZones(r.Context())
	if err != nil {
		return err
	}
	if zones == nil {
		zones = []ZoneInfo{}
	}
	writeJSON(w, http.StatusOK, ZoneList{Zones: zones})
	return nil
}

func (h *handler) createZone(w http.ResponseWriter, r *http.Request) error {
	mt, err := requireMedia(r, MediaJSON, MediaZoneFile, "text/plain")
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var info ZoneInfo
	if mt == MediaJSON {
		var req CreateZone
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
		if req.Name == "" {
			return badRequest("name: required")
		}
		name, err := newZoneName(req.Name, req.AllowTLD, "allow_tld")
		if err != nil {
			return err
		}
		rrs, err := ParseRecords(name, req.Records)
		if err != nil {
			return Mark(err, ErrInvalid)
		}
		if info, err = h.b.CreateZone(r.Context(), name, rrs, req.SerialPolicy); err != nil {
			return err
		}
	} else {
		q := r.URL.Query()
		if q.Get("name") == "" {
			return badRequest("name: required (query parameter ?name=ZONE with a %s body)", mt)
		}
		allow, err := allowTLDParam(r)
		if err != nil {
			return err
		}
		name, err := newZoneName(q.Get("name"), allow, "?allow_tld=true")
		if err != nil {
			return err
		}
		if info, err = h.b.CreateZoneText(r.Context(), name, bytes.NewReader(body), q.Get("serial_policy")); err != nil {
			return err
		}
	}
	requestInfo(r).serial = info.Serial
	w.Header().Set("Location", ZonePath(info.Name))
	writeJSON(w, http.StatusCreated, info)
	return nil
}

// newZoneName is the canonical name of a zone to create: one the nodes
// serve (zone.ValidateZoneName, the rule of their catalog consumer), and
// the root or a top-level domain only with allow (flag names the way to
// ask for it).
func newZoneName(name string, allow bool, flag string) (string, error) {
	canon, err := CanonicalZone(name)
	if err != nil {
		return "", badRequest("name: %v", err)
	}
	if err := zone.ValidateZoneName(canon); err != nil {
		return "", badRequest("name: not a zone the nodes can serve: %v", err)
	}
	if !allow && dns.CountLabel(canon) < 2 {
		what := canon + " is a top-level domain"
		if canon == "." {
			what = ". is the root zone"
		}
		return "", badRequest("name: %s; creating it needs %s", what, flag)
	}
	return canon, nil
}

// allowTLDParam reads ?allow_tld=true.
func allowTLDParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("allow_tld")
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badRequest("allow_tld: want true or false, got %q", v)
}

func (h *handler) showZone(w http.ResponseWriter, r *http.Request) error {
	name, err := zoneParam(r)
	if err != nil {
		return err
	}
	info, z, err := h.b.Zone(r.Context(), name)
	if err != nil {
		return err
	}
	sets, err := zoneRRsets(z, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Zone{ZoneInfo: info, RRsets: sets})
	return nil
}

func (h *handler) deleteZone(w http.ResponseWriter, r *http.Request) error {
	name, err := zoneParam(r)
	if err != nil {
		return err
	}
	if err := h.b.DeleteZone(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) exportZone(w http.ResponseWriter, r *http.Request) error {
	name, err := zoneParam(r)
	if err != nil {
		return err
	}
	_, z, err := h.b.Zone(r.Context(), name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := z.WriteTo(&buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", MediaZoneFile)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}

func (h *handler) importZone(w http.ResponseWriter, r *http.Request) error {
	name, err := zoneParam(r)
	if err != nil {
		return err
	}
	if _, err := requireMedia(r, MediaZoneFile, "text/plain"); err != nil {
		return err
	}
	allow, err := allowTLDParam(r)
	if err != nil {
		return err
	}
	// An import that creates the zone is held to the rules of creation.
	// (Should the zone be deleted between this check and the import, the
	// import creates it under a name that passed zone.ValidateZoneName
	// there, as the store checks it again.)
	if _, _, err := h.b.Zone(r.Context(), name); errors.Is(err, ErrNotFound) {
		if _, err := newZoneName(name, allow, "?allow_tld=true"); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	info, err := h.b.ImportZone(r.Context(), name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	requestInfo(r).serial = info.Serial
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (h *handler) listRRsets(w http.ResponseWriter, r *http.Request) error {
	zname, err := zoneParam(r)
	if err != nil {
		return err
	}
	owner := ""
	if n := r.URL.Query().Get("name"); n != "" {
		if owner, err = ResolveName(zname, n); err != nil {
			return badRequest("name: %v", err)
		}
	}
	_, z, err := h.b.Zone(r.Context(), zname)
	if err != nil {
		return err
	}
	sets, err := zoneRRsets(z, owner)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RRsetList{RRsets: sets})
	return nil
}

// rrsetParams are the zone, owner and type of an RRset path.
func rrsetParams(r *http.Request) (zname, owner string, t uint16, err error) {
	if zname, err = zoneParam(r); err != nil {
		return "", "", 0, err
	}
	if owner, err = ResolveName(zname, r.PathValue("name")); err != nil {
		return "", "", 0, Mark(err, ErrInvalid)
	}
	if t, err = ParseType(r.PathValue("type")); err != nil {
		return "", "", 0, Mark(err, ErrInvalid)
	}
	return zname, owner, t, nil
}

func (h *handler) getRRset(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := rrsetParams(r)
	if err != nil {
		return err
	}
	rrs, err := h.b.RRset(r.Context(), zname, owner, t)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", ETag(rrs))
	writeJSON(w, http.StatusOK, toRRset(owner, t, rrs))
	return nil
}

// rrsetRequest is the body of a PUT of an RRset.
type rrsetRequest struct {
	Name    *string  `json:"name"`
	Type    *string  `json:"type"`
	TTL     *int64   `json:"ttl"`
	Records []string `json:"records"`
}

// parseRRsetRequest reads the JSON body of a PUT into records; ttlGiven is
// false when the body has no ttl (the records then have TTL 0 until the
// caller sets it).
func parseRRsetRequest(body []byte, zname, owner string, t uint16) (rrs []dns.RR, ttlGiven bool, err error) {
	var req rrsetRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, false, err
	}
	if req.Name != nil {
		n, err := ResolveName(zname, *req.Name)
		if err != nil || n != owner {
			return nil, false, badRequest("name: %q is not the name of the path (%s)", *req.Name, owner)
		}
	}
	if req.Type != nil {
		bt, err := ParseType(*req.Type)
		if err != nil || bt != t {
			return nil, false, badRequest("type: %q is not the type of the path (%s)", *req.Type, typeString(t))
		}
	}
	var ttl uint32
	switch {
	case req.TTL != nil && (*req.TTL < 0 || *req.TTL > maxTTL):
		return nil, false, badRequest("ttl: must be between 0 and %d, got %d", maxTTL, *req.TTL)
	case len(req.Records) == 0:
		return nil, false, badRequest("records: at least one record is required (DELETE removes an RRset)")
	case req.TTL != nil:
		ttl = uint32(*req.TTL)
	}
	rrs, err = ParseRRset(zname, owner, t, ttl, req.Records)
	if err != nil {
		return nil, false, Mark(err, ErrInvalid)
	}
	return rrs, req.TTL != nil, nil
}

// defaultTTL is the TTL of a new RRset written without one: the TTL of the
// zone's SOA record. Zone files give their SOA the $TTL more often than
// not, and a zone made with anycastctl zone create has 3600 there.
func (h *handler) defaultTTL(ctx context.Context, zname string) (uint32, error) {
	soa, err := h.b.RRset(ctx, zname, zname, dns.TypeSOA)
	if err != nil {
		return 0, err
	}
	if len(soa) == 0 {
		return 0, fmt.Errorf("zone %s has no SOA record", zname)
	}
	return soa[0].Header().Ttl, nil
}

func (h *handler) putRRset(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := rrsetParams(r)
	if err != nil {
		return err
	}
	if t == steer.TypePool {
		return badRequest("type %s holds pools: write them through %s/{A,AAAA}", typeString(t), PoolsPath(zname)+"/"+PathSegment(owner))
	}
	if _, err := requireMedia(r, MediaJSON); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	rrs, ttlGiven, err := parseRRsetRequest(body, zname, owner, t)
	if err != nil {
		return err
	}
	// Without a ttl, an RRset keeps its TTL and a new one gets the zone's
	// default, read before the write: an SOA TTL that changes meanwhile
	// would have been read a moment later.
	var zoneTTL uint32
	if !ttlGiven {
		if zoneTTL, err = h.defaultTTL(r.Context(), zname); err != nil {
			return err
		}
	}
	serial, stored, err := h.b.UpdateRRset(r.Context(), zname, owner, t, func(cur []dns.RR) ([]dns.RR, error) {
		if err := checkPreconditions(r, cur); err != nil {
			return nil, err
		}
		if !ttlGiven {
			ttl := zoneTTL
			if len(cur) > 0 {
				ttl = toRRset(owner, t, cur).TTL
			}
			for _, rr := range rrs {
				rr.Header().Ttl = ttl
			}
		}
		return rrs, nil
	})
	if err != nil {
		return err
	}
	requestInfo(r).serial = serial
	set := toRRset(owner, t, stored)
	w.Header().Set("ETag", ETag(stored))
	writeJSON(w, http.StatusOK, WriteResult{Serial: serial, RRset: &set})
	return nil
}

func (h *handler) deleteRRset(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := rrsetParams(r)
	if err != nil {
		return err
	}
	serial, _, err := h.b.UpdateRRset(r.Context(), zname, owner, t, func(cur []dns.RR) ([]dns.RR, error) {
		if err := checkPreconditions(r, cur); err != nil {
			return nil, err
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	requestInfo(r).serial = serial
	writeJSON(w, http.StatusOK, WriteResult{Serial: serial})
	return nil
}

// checkPreconditions evaluates If-Match and If-None-Match (RFC 9110
// §13.1.1, §13.1.2) against the current records of an RRset.
func checkPreconditions(r *http.Request, cur []dns.RR) error {
	tag := ETag(cur)
	if im := r.Header.Get("If-Match"); im != "" {
		if tag == "" || !etagListMatches(im, tag, false) {
			return preconditionFailed(tag)
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if tag != "" && etagListMatches(inm, tag, true) {
			return preconditionFailed(tag)
		}
	}
	return nil
}

func preconditionFailed(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: the RRset does not exist", errPrecondition)
	}
	return fmt.Errorf("%w: the RRset's ETag is %s", errPrecondition, tag)
}

// etagListMatches reports whether an If-Match or If-None-Match value ("*"
// or a list of entity tags) matches tag; weak tags match only in the weak
// comparison.
func etagListMatches(list, tag string, weak bool) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if w, ok := strings.CutPrefix(item, "W/"); ok {
			if !weak {
				continue
			}
			item = w
		}
		if item == tag {
			return true
		}
	}
	return false
}
