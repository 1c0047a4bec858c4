package benc

import "testing"

func TestBytesStrict(t *testing.T) {
	type dict struct {
		A Bytes `bencode:"a"`
		B Bytes `bencode:"b"`
	}
	tests := []struct {
		in      string
		wantErr bool
		a, b    []byte
	}{
		{in: "d1:a3:xyz1:b0:e", a: []byte("xyz"), b: []byte{}},
		{in: "d1:a3:xyze", a: []byte("xyz")},
		{in: "d1:ali1eee", wantErr: true},
		{in: "d1:ai1ee", wantErr: true},
		{in: "d1:b1:x1:a1:ye", wantErr: true}, // unsorted
		{in: "d1:a1:x1:a1:ye", wantErr: true}, // duplicate
		{in: "d1:a01:xe", wantErr: true},      // leading zero
		{in: "d1:a1:xex", wantErr: true},      // trailing
		{in: "d1:a5:xe", wantErr: true},       // short
		{in: "le", wantErr: true},             // not a dict
	}
	for _, tt := range tests {
		var d dict
		err := Unmarshal([]byte(tt.in), &d)
		if (err != nil) != tt.wantErr {
			t.Errorf("Unmarshal(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if string(d.A) != string(tt.a) || (d.B == nil) != (tt.b == nil) {
			t.Errorf("Unmarshal(%q) = %q %q, want %q %q", tt.in, d.A, d.B, tt.a, tt.b)
		}
	}
}

func TestMarshalSorted(t *testing.T) {
	got, err := Marshal(map[string]any{"s": []byte{1}, "p": "x", "ek": "k", "t": int64(1700000000000)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "d2:ek1:k1:p1:x1:s1:\x011:ti1700000000000ee"; string(got) != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
}
