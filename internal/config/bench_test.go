package config_test

import (
	"os"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// BenchmarkParseNode parses the example configuration, which shows every key.
func BenchmarkParseNode(b *testing.B) {
	data, err := os.ReadFile("../../examples/node.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := config.ParseNode(data, "node.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
