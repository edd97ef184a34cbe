package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
)

// TestECDSASignature: a P-256 key signs with RFC 6979's nonce (the same
// data twice gives the same signature, where the hedged nonce gave two),
// in the r||s form of RFC 6605 that verifies.
func TestECDSASignature(t *testing.T) {
	k := testKeys(t, "example.com.", DefaultPolicy())[0]
	priv, ok := k.Private.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("the default policy's key is a %T", k.Private)
	}
	for _, data := range [][]byte{nil, []byte("an RRset in canonical form"), bytes.Repeat([]byte{0xff}, 4096)} {
		a, err := k.sign(data)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.sign(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%d bytes signed twice: two signatures (the nonce is not RFC 6979's)", len(data))
		}
		if len(a) != 64 {
			t.Fatalf("signature of %d bytes, want 64", len(a))
		}
		d := sha256.Sum256(data)
		r, s := new(big.Int).SetBytes(a[:32]), new(big.Int).SetBytes(a[32:])
		if !ecdsa.Verify(&priv.PublicKey, d[:], r, s) {
			t.Errorf("%d bytes: the signature does not verify", len(data))
		}
	}
}

func TestRawSignature(t *testing.T) {
	r32 := bytes.Repeat([]byte{0x11}, 32)
	hi := append([]byte{0x00, 0x80}, bytes.Repeat([]byte{0x22}, 31)...) // 33 bytes: a zero before a high bit
	short := bytes.Repeat([]byte{0x33}, 30)
	seq := func(ints ...[]byte) []byte {
		var body []byte
		for _, v := range ints {
			body = append(body, 0x02, byte(len(v)))
			body = append(body, v...)
		}
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	pad := func(v []byte) []byte {
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		return append(make([]byte, 32-len(v)), v...)
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want []byte
		err  string
	}{
		{"32 and 32 bytes", seq(r32, r32), append(slicesClone(r32), r32...), ""},
		{"leading zero", seq(hi, r32), append(pad(hi), r32...), ""},
		{"short s", seq(r32, short), append(slicesClone(r32), pad(short)...), ""},
		{"empty", nil, nil, "not a short DER SEQUENCE"},
		{"not a sequence", append([]byte{0x31}, seq(r32, r32)[1:]...), nil, "not a short DER SEQUENCE"},
		{"length differs", append(seq(r32, r32), 0), nil, "not a short DER SEQUENCE"},
		{"one integer", seq(r32), nil, "bad INTEGER 2"},
		{"not an integer", []byte{0x30, 4, 0x04, 2, 1, 1}, nil, "bad INTEGER 1"},
		{"integer past the end", []byte{0x30, 4, 0x02, 9, 1, 1}, nil, "bad INTEGER 1"},
		{"too long", seq(bytes.Repeat([]byte{0x44}, 33), r32), nil, "33 bytes, more than 32"},
		{"three integers", seq(r32, r32, short), nil, "bytes after s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rawSignature(tc.der, 32)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %x\nwant %x", got, tc.want)
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }
