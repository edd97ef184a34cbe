// Package geodbtest writes small MaxMind DB files for tests, with
// MaxMind's own writer (mmdbwriter), as GeoLite2-Country lays them out:
// a record per place with continent.code, country.iso_code and
// registered_country.iso_code (and a city's name, as a City database has).
package geodbtest

import (
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Place is one network of a test database and the codes of its record;
// an empty code is left out of the record.
type Place struct {
	Network, Country, Registered, Continent string
}

// Write writes a MaxMind DB of places to path.
func Write(t testing.TB, path string, places []Place) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", IncludeReservedNetworks: true,
		RecordSize: 24, BuildEpoch: 1765000000, Description: map[string]string{"en": "anycastdns test database"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range places {
		_, n, err := net.ParseCIDR(p.Network)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{}
		if p.Continent != "" {
			rec["continent"] = mmdbtype.Map{"code": mmdbtype.String(p.Continent), "geoname_id": mmdbtype.Uint32(6255148)}
		}
		if p.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(p.Country), "names": mmdbtype.Map{"en": mmdbtype.String(p.Country)}}
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Somewhere")}}
		}
		if p.Registered != "" {
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(p.Registered)}
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
