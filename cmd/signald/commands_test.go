package main

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func envFunc(env []string) func(string) string {
	return func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
}

func runCommand(t *testing.T, args, env []string) (rc int, stdout, stderr string) {
	t.Helper()
	var out, errs syncBuf
	rc, ok := command(args, envFunc(env), env, &out, &errs)
	if !ok {
		t.Fatalf("command(%q) is not a subcommand", args)
	}
	return rc, out.String(), errs.String()
}

// TestConfigPrintRoundTrip: what "config print -secrets" prints is a config
// file that sets every option (so every flag is settable in the file) and
// loads back to the same configuration.
func TestConfigPrintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.toml")
	os.WriteFile(file, []byte("max-offers = 7\nturn-allow-peers = \"192.168.1.0/24\"\n"), 0o600)
	env := []string{"SIGNALD_INTERVAL=90s", "SIGNALD_TURN_SECRET=0123456789abcdef0123"}
	args := []string{"-config", file, "-announce-rate", "2.5", "-turn-relay-ports", "50000-50999", "-dashboard=false", "-public-host", `box "1" \ home`}
	rc, printed, stderr := runCommand(t, append([]string{"config", "print", "-secrets"}, args...), env)
	if rc != 0 {
		t.Fatalf("config print: rc %d, %s", rc, stderr)
	}
	for _, want := range []string{"max-offers = 7  # file " + file + ":1", `interval = "1m30s"  # env SIGNALD_INTERVAL`,
		"announce-rate = 2.5  # flag", "dashboard = false  # flag", "max-sdp-bytes = 16384  # default", `turn-secret = "0123456789abcdef0123"`} {
		if !strings.Contains(printed, want) {
			t.Errorf("config print lacks %q:\n%s", want, printed)
		}
	}
	want, _, err := loadConfig(args, envFunc(env), env)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "printed.toml")
	os.WriteFile(out, []byte(printed), 0o600)
	got, src, err := loadConfig([]string{"-config", out}, envFunc(nil), nil)
	if err != nil {
		t.Fatalf("loading the printed config: %v\n%s", err, printed)
	}
	got.ConfigFile, want.ConfigFile = "", ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	flags(new(config)).VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && !strings.HasPrefix(src[f.Name], "file "+out+":") {
			t.Errorf("option %s not set by the printed file (source %q)", f.Name, src[f.Name])
		}
	})

	// Without -secrets the values stay hidden and the file still loads.
	_, printed, _ = runCommand(t, append([]string{"config", "print"}, args...), env)
	if strings.Contains(printed, "0123456789abcdef0123") || !strings.Contains(printed, "# turn-secret = (set, hidden") {
		t.Errorf("config print shows the secret:\n%s", printed)
	}
	os.WriteFile(out, []byte(printed), 0o600)
	if _, _, err := loadConfig([]string{"-config", out}, envFunc(nil), nil); err != nil {
		t.Errorf("printed config without secrets does not load: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("# my Box\naddr = \":8443\"\nturn-relay-ports = \"50000-50100\"\n"), 0o600)
	rc, out, errs := runCommand(t, []string{"check", "-config", good, "-data-dir", dir}, nil)
	if rc != 0 || !strings.Contains(out, "configuration OK ("+good) {
		t.Fatalf("check good: rc %d, %q %q", rc, out, errs)
	}

	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(strings.Join([]string{
		"addr = \":8000\"",
		"max-ofers = 3",                // 2: unknown, with a suggestion
		"interval = 60",                // 3: a duration needs a unit
		"turn-relay-ports = \"80-90\"", // 4: out of range (reported by validation, with its line)
		"log-level = \"loud\"",         // 5
		"[turn]",                       // 6: no tables
		"udp = \":3478\"",
	}, "\n")), 0o600)
	rc, _, errs = runCommand(t, []string{"check", "-config", bad, "-data-dir", dir}, nil)
	if rc != 2 {
		t.Fatalf("check bad: rc %d", rc)
	}
	for _, want := range []string{
		bad + `:2: unknown key "max-ofers" (did you mean "max-offers"?)`,
		bad + `:3: interval = "60": want a duration such as "90s"`,
		bad + `:6: turn: want a string, number or boolean, got a table`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("check output lacks %q:\n%s", want, errs)
		}
	}
	// Once the file parses, validation names the line of each bad value.
	os.WriteFile(bad, []byte("addr = \":8000\"\nturn-relay-ports = \"80-90\"\nlog-level = \"loud\"\nacme-domain = \"https://box.example\"\n"), 0o600)
	_, _, errs = runCommand(t, []string{"check", "-config", bad, "-data-dir", dir}, nil)
	for _, want := range []string{
		bad + `:2: turn-relay-ports "80-90": want MIN-MAX within 1024-65535`,
		bad + `:3: log-level "loud": want debug, info, warn or error`,
		bad + `:4: acme-domain "https://box.example": want host names`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("check output lacks %q:\n%s", want, errs)
		}
	}
	// Files it names are opened.
	rc, _, errs = runCommand(t, []string{"check", "-tls-cert", filepath.Join(dir, "none.pem"), "-tls-key", filepath.Join(dir, "none.key"), "-data-dir", dir}, nil)
	if rc != 2 || !strings.Contains(errs, "flag -tls-cert: tls-cert/tls-key: open") {
		t.Errorf("check missing cert: rc %d %q", rc, errs)
	}
}

func TestConfigValueErrorsSayWhatIsWanted(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"SIGNALD_PEER_TTL=3", `want a duration such as "90s"`},
		{"SIGNALD_TURN=yes", "want true or false"},
		{"SIGNALD_MAX_OFFERS=1.5", "want an integer"},
		{"SIGNALD_ANNOUNCE_RATE=fast", "want a number"},
	} {
		_, _, err := loadConfig(nil, envFunc(nil), []string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.env, err, tc.want)
		}
	}
	if _, _, err := loadConfig([]string{"-drain-timeout", "-1s"}, envFunc(nil), nil); err == nil || !strings.Contains(err.Error(), "flag -drain-timeout: drain-timeout -1s is negative") {
		t.Errorf("negative duration: %v", err)
	}
}
