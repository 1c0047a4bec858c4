package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"go.yaml.in/yaml/v3"
)

// The packaging files live at the repository root; tests run in cmd/signald.
func repoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   []string          `yaml:"depends_on"`
	Restart     string            `yaml:"restart"`
}

// interpolate does what compose does with ${VAR:-default} and ${VAR}, with
// an empty environment.
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}`).ReplaceAllString(s, "$1")
}

// published is one "HOST:CONTAINER/proto" port mapping, ranges expanded.
type published struct {
	host, container [2]int // first, last
	proto           string
}

func parsePortSpec(spec string) (published, error) {
	var p published
	spec, p.proto, _ = strings.Cut(spec, "/")
	if p.proto == "" {
		p.proto = "tcp"
	}
	parts := strings.Split(spec, ":")
	if len(parts) < 2 {
		return p, fmt.Errorf("%q: want HOST:CONTAINER (publish explicitly)", spec)
	}
	rng := func(s string) ([2]int, error) {
		a, b, ok := strings.Cut(s, "-")
		if !ok {
			b = a
		}
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo > hi {
			return [2]int{}, fmt.Errorf("bad port range %q", s)
		}
		return [2]int{lo, hi}, nil
	}
	var err error
	if p.host, err = rng(parts[len(parts)-2]); err != nil {
		return p, err
	}
	if p.container, err = rng(parts[len(parts)-1]); err != nil {
		return p, err
	}
	return p, nil
}

// listeners lists the ports a configuration listens on, by protocol: what
// a container or a router must let in.
func listeners(t *testing.T, c *config) map[string][][2]int {
	t.Helper()
	out := map[string][][2]int{}
	add := func(proto, addrs string) {
		for _, a := range list(addrs) {
			_, port, _ := strings.Cut(a[strings.LastIndex(a, "]")+1:], ":")
			n, err := strconv.Atoi(port)
			if err != nil {
				t.Fatalf("address %q", a)
			}
			out[proto] = append(out[proto], [2]int{n, n})
		}
	}
	add("tcp", c.Addr)
	if c.TURN {
		add("udp", c.TURNUDP)
		add("tcp", c.TURNTCP)
		if c.TLSCert != "" || c.ACMEDomain != "" {
			add("tcp", c.TURNTLS)
		}
		lo, hi, err := c.relayPorts()
		if err != nil {
			t.Fatal(err)
		}
		out["udp"] = append(out["udp"], [2]int{lo, hi})
	}
	if c.Federation {
		addrs, err := c.p2pListen()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			m, _ := ma.NewMultiaddr(a)
			for proto, code := range map[string]int{"tcp": ma.P_TCP, "udp": ma.P_UDP} {
				if v, err := m.ValueForProtocol(code); err == nil {
					n, _ := strconv.Atoi(v)
					if !slices.Contains(out[proto], [2]int{n, n}) {
						out[proto] = append(out[proto], [2]int{n, n})
					}
				}
			}
		}
	}
	return out
}

// TestComposeFile parses docker-compose.yml and checks it against signald:
// its environment is a valid configuration, every port that configuration
// listens on is published under the same number (TURN and /ice hand out
// the listener's ports), and the messageboard peer runs from the same image.
func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(repoFile(t, "docker-compose.yml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	sd, ok := compose.Services["signald"]
	if !ok {
		t.Fatal("no signald service")
	}
	if sd.Build["dockerfile"] != "packaging/Dockerfile" || sd.Image == "" {
		t.Errorf("signald service builds %v as %q", sd.Build, sd.Image)
	}
	var env []string
	for k, v := range sd.Environment {
		env = append(env, k+"="+interpolate(v))
	}
	if len(sd.Command) == 0 || sd.Command[0] != "signald" {
		t.Fatalf("signald command %q", sd.Command)
	}
	cfg, _, err := loadConfig(sd.Command[1:], envFunc(env), env)
	if err != nil {
		t.Fatalf("signald service configuration: %v", err)
	}
	var pub []published
	for _, spec := range sd.Ports {
		p, err := parsePortSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		if p.host != p.container {
			t.Errorf("port %q: publish under the same number; TURN and /ice advertise the container's", spec)
		}
		pub = append(pub, p)
	}
	for proto, ranges := range listeners(t, cfg) {
		for _, r := range ranges {
			covered := false
			for _, p := range pub {
				covered = covered || (p.proto == proto && p.container[0] <= r[0] && r[1] <= p.container[1])
			}
			if !covered {
				t.Errorf("signald listens on %s %d-%d, which docker-compose.yml does not publish", proto, r[0], r[1])
			}
		}
	}
	if v := sd.Environment["SIGNALD_TURN_RELAY_IP"]; !strings.Contains(v, "${BOX_PUBLIC_IP") {
		t.Errorf("SIGNALD_TURN_RELAY_IP = %q: relayed addresses need the Box's public address", v)
	}
	if !slicesHasPrefix(sd.Volumes, "signald-state:/var/lib/signald") {
		t.Errorf("signald state is not on a volume: %q", sd.Volumes)
	}

	mb, ok := compose.Services["messageboard"]
	if !ok {
		t.Fatal("no messageboard service")
	}
	if mb.Image != sd.Image || len(mb.Command) < 2 || mb.Command[0] != "peer" || mb.Command[1] != "messageboard" {
		t.Errorf("messageboard runs %q %q, want the signald image with peer messageboard", mb.Image, mb.Command)
	}
	_, port, _ := strings.Cut(cfg.Addr, ":")
	if cmd := strings.Join(mb.Command, " "); !strings.Contains(cmd, "ws://signald:"+port) {
		t.Errorf("messageboard %q does not use the signald service's tracker", cmd)
	}
	if _, err := os.Stat(filepath.Join("..", "peer")); err != nil {
		t.Errorf("cmd/peer is missing but docker-compose.yml runs it: %v", err)
	}
}

func slicesHasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// TestDockerfile: the image is built static from ./cmd/... (signald and
// peer), runs unprivileged, and keeps state where compose mounts it.
func TestDockerfile(t *testing.T) {
	df := string(repoFile(t, "packaging/Dockerfile"))
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "./cmd/...", "FROM scratch", "USER 65532", "SIGNALD_DATA_DIR=/var/lib/signald", `CMD ["signald"]`,
		"EXPOSE 8000/tcp 3478/udp 3478/tcp 5349/tcp 4001/tcp 4001/udp"} {
		if !strings.Contains(df, want) {
			t.Errorf("packaging/Dockerfile lacks %q", want)
		}
	}
}

// TestSystemdUnit: ExecStart is a valid signald command line, state goes to
// StateDirectory, and the hardening options are there.
func TestSystemdUnit(t *testing.T) {
	unit := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(repoFile(t, "packaging/signald.service"))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			unit[k] = append(unit[k], v)
		}
	}
	exec := strings.Fields(unit["ExecStart"][0])
	if exec[0] != "/usr/local/bin/signald" {
		t.Errorf("ExecStart %q", exec)
	}
	// The config file it names is the sample, installed.
	args := exec[1:]
	for i, a := range args {
		if a == "/etc/signald/signald.toml" {
			args[i] = filepath.Join("..", "..", "packaging", "signald.toml")
		}
	}
	if _, _, err := loadConfig(args, envFunc(nil), nil); err != nil {
		t.Errorf("ExecStart: %v", err)
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "signald", "ProtectSystem": "strict", "ProtectHome": "yes",
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
		"AmbientCapabilities": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"MemoryDenyWriteExecute": "yes", "SystemCallFilter": "@system-service", "ExecReload": "/bin/kill -HUP $MAINPID",
	} {
		if v := unit[k]; len(v) == 0 || v[len(v)-1] != want {
			t.Errorf("signald.service: %s=%q, want %q", k, v, want)
		}
	}
}

// TestSampleConfig: packaging/signald.toml sets every option (so it cannot
// fall behind the option table) and loads.
func TestSampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "packaging", "signald.toml")
	_, src, err := loadConfig([]string{"-config", path}, envFunc(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range src {
		if name != "config" && !strings.HasPrefix(s, "file ") {
			t.Errorf("packaging/signald.toml lacks %s (regenerate: signald config print)", name)
		}
	}
}

// TestDocsConfigSnippets loads every ```toml block of docs/box.md.
func TestDocsConfigSnippets(t *testing.T) {
	doc := string(repoFile(t, "docs/box.md"))
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/box.md has no toml snippet")
	}
	dir := t.TempDir()
	for i, b := range blocks {
		f := filepath.Join(dir, fmt.Sprintf("snippet%d.toml", i))
		os.WriteFile(f, []byte(b[1]), 0o600)
		if _, _, err := loadConfig([]string{"-config", f}, envFunc(nil), nil); err != nil {
			t.Errorf("docs/box.md snippet %d:\n%s\n%v", i+1, b[1], err)
		}
	}
}
