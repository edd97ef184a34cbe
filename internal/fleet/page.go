package fleet

import (
	"embed"
	"net/http"
)

//go:embed page/fleet.html page/fleet.css page/fleet.js
var pageFiles embed.FS

// Paths of the fleet page.
const (
	PagePath   = "/fleet"
	pageScript = "/fleet/fleet.js"
	pageStyle  = "/fleet/fleet.css"
)

// IsPage reports whether a request path is the fleet page or one of its
// files.
func IsPage(path string) bool {
	return path == PagePath || path == pageScript || path == pageStyle
}

// PageHandler serves the fleet page: a read-only view of GET /v1/fleet,
// refreshed every second, with no external assets. The page and its files
// hold no data: the data comes from the API with the operator's token,
// which the page asks for (or takes from a "#token=" in its address) and
// keeps in the tab's sessionStorage.
func PageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var file, ctype string
		switch r.URL.Path {
		case PagePath:
			file, ctype = "page/fleet.html", "text/html; charset=utf-8"
		case pageScript:
			file, ctype = "page/fleet.js", "text/javascript; charset=utf-8"
		case pageStyle:
			file, ctype = "page/fleet.css", "text/css; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		b, err := pageFiles.ReadFile(file)
		if err != nil {
			http.Error(w, "page missing from the build", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
			"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		_, _ = w.Write(b)
	})
}
