package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// Zone transfers over TLS (XoT, RFC 9103): the control plane's
// xfr.tls section and the tls section of a node's primary. The files are
// read here, so that checkconf and a reload report a certificate that
// would not load at its line.

// xfrTLS checks the control plane's xfr.tls section.
func (v *validator) xfrTLS(t *XfrTLS, tcp map[netip.AddrPort]string) {
	if len(t.Listen) == 0 && !v.bad("xfr.tls.listen") {
		v.add("xfr.tls", "listen: at least one address is required (for example 127.0.0.1:853)")
	}
	for i, a := range t.Listen {
		p := indexPath("xfr.tls.listen", i)
		switch {
		case !a.IsValid():
			if !v.bad(p) {
				v.add(p, "invalid address")
			}
		default:
			v.httpListen(p, a, tcp)
		}
	}
	v.keyPair("xfr.tls", t.Cert, t.Key, true)
}

// primaryTLS checks the tls section of a primary.
func (v *validator) primaryTLS(path string, t *PrimaryTLS) {
	if t.CA != "" && !v.bad(path+".ca") {
		if b, ok := v.readFile(path+".ca", t.CA); ok && !x509.NewCertPool().AppendCertsFromPEM(b) {
			v.add(path+".ca", "no PEM certificate in %s", filepath.Base(t.CA))
		}
	}
	v.keyPair(path, t.Cert, t.Key, false)
}

// readFile reads the file named at path, reporting there why it cannot
// (the path itself is on that line).
func (v *validator) readFile(path, file string) ([]byte, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		v.add(path, "cannot read %s: %v", filepath.Base(file), err)
		return nil, false
	}
	return b, true
}

// keyPair checks the cert and key fields of a tls section at path: both
// or (unless required) neither, and a certificate that loads with its key.
func (v *validator) keyPair(path, cert, key string, required bool) {
	switch {
	case cert == "" && key == "":
		if required {
			v.add(path+".cert", "required (a PEM certificate file; key too)")
		}
	case cert == "":
		v.add(path+".cert", "required with key")
	case key == "":
		v.add(path+".key", "required with cert")
	case !v.bad(path+".cert") && !v.bad(path+".key"):
		c, okc := v.readFile(path+".cert", cert)
		k, okk := v.readFile(path+".key", key)
		if !okc || !okk {
			return
		}
		if _, err := tls.X509KeyPair(c, k); err != nil {
			v.add(path+".cert", "%s with key %s: %v", filepath.Base(cert), filepath.Base(key), err)
		}
	}
}
