package store

import (
	"testing"
	"time"
)

func TestNextSerial(t *testing.T) {
	day := time.Date(2026, 3, 14, 23, 59, 59, 0, time.FixedZone("x", 5*3600)) // 2026-03-14 18:59 UTC
	tests := []struct {
		name   string
		policy SerialPolicy
		old    uint32
		want   uint32
	}{
		{"increment", SerialIncrement, 41, 42},
		{"increment wraps past zero", SerialIncrement, 1<<32 - 1, 1},
		{"date from older", SerialDate, 2026031207, 2026031400},
		{"date from a small serial", SerialDate, 1, 2026031400},
		{"date same day", SerialDate, 2026031400, 2026031401},
		{"date same day, nn spills over", SerialDate, 2026031499, 2026031500},
		{"date ahead of today", SerialDate, 2027010100, 2027010101},
		// 4000000000 is less than 2^31 above 2026031400, so in RFC 1982
		// terms today's serial is behind it: only incrementing moves on.
		{"date from a serial that wraps ahead", SerialDate, 4000000000, 4000000001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextSerial(tt.policy, tt.old, day); got != tt.want {
				t.Errorf("nextSerial(%s, %d) = %d, want %d", tt.policy, tt.old, got, tt.want)
			}
		})
	}
}

func TestBumpSerial(t *testing.T) {
	now := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		policy    SerialPolicy
		old, prop uint32
		has       bool
		want      uint32
	}{
		{"no proposal", SerialIncrement, 10, 0, false, 11},
		{"older proposal", SerialIncrement, 10, 5, true, 11},
		{"same proposal", SerialIncrement, 10, 10, true, 11},
		{"proposal equal to the next", SerialIncrement, 10, 11, true, 11},
		{"newer proposal kept", SerialIncrement, 10, 500, true, 500},
		{"proposal across the wrap", SerialIncrement, 1<<32 - 10, 5, true, 5},
		{"proposal too far ahead is behind", SerialIncrement, 10, 10 + 1<<31 + 1, true, 11},
		{"date beats an older proposal", SerialDate, 2026031300, 2026031305, true, 2026031400},
		{"newer proposal beats date", SerialDate, 2026031300, 2026031500, true, 2026031500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bumpSerial(tt.policy, tt.old, tt.prop, tt.has, now); got != tt.want {
				t.Errorf("bumpSerial(%s, %d, %d, %t) = %d, want %d", tt.policy, tt.old, tt.prop, tt.has, got, tt.want)
			}
		})
	}
}

func TestCreateSerial(t *testing.T) {
	now := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		policy      SerialPolicy
		given, want uint32
	}{
		{SerialIncrement, 0, 0},
		{SerialIncrement, 7, 7},
		{SerialDate, 7, 2026031400},
		{SerialDate, 2026031405, 2026031405},
		{SerialDate, 2030010100, 2030010100},
	} {
		if got := createSerial(tt.policy, tt.given, now); got != tt.want {
			t.Errorf("createSerial(%s, %d) = %d, want %d", tt.policy, tt.given, got, tt.want)
		}
	}
	if _, ok := dateSerial(time.Date(4295, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Error("dateSerial in the year 4295 fits in 32 bits?")
	}
}
