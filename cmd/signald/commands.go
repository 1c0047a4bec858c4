package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const usageCommands = `Commands:
  signald [options]               run the Box
  signald check [options]         validate the configuration and exit (0: ok, 2: errors)
  signald config print [options]  print the effective configuration as TOML,
                                  with where each value came from
                                  (-secrets: show secret values too)
` + usageFederation

// command runs a subcommand if args name one; ok is false otherwise.
func command(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) (rc int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch {
	case args[0] == "check":
		return check(args[1:], getenv, environ, stdout, stderr), true
	case args[0] == "config" && len(args) > 1 && args[1] == "print":
		return printConfig(args[2:], getenv, environ, stdout, stderr), true
	case args[0] == "config":
		fmt.Fprintf(stderr, "signald: config: want \"config print\"\n%s", usageCommands)
		return 2, true
	case args[0] == "id":
		return idCommand(args[1:], getenv, environ, stdout, stderr), true
	case args[0] == "friend":
		return friendCommand(args[1:], getenv, environ, stdout, stderr), true
	case args[0] == "help":
		fmt.Fprint(stdout, usageCommands)
		return 0, true
	}
	return 0, false
}

// check loads the configuration as the daemon would and also opens the
// files it names, without binding any port.
func check(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	cfg, src, err := loadConfig(args, getenv, environ)
	if err != nil {
		fmt.Fprintf(stderr, "signald check: %v\n", err)
		return 2
	}
	var problems []string
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			problems = append(problems, fmt.Sprintf("%stls-cert/tls-key: %v", src.where("tls-cert"), err))
		}
	}
	if cfg.ACMECAFile != "" {
		if _, err := loadCAFile(cfg.ACMECAFile); err != nil {
			problems = append(problems, fmt.Sprintf("%sacme-ca-file: %v", src.where("acme-ca-file"), err))
		}
	}
	if dir, err := cfg.dataDir(getenv); err != nil {
		problems = append(problems, fmt.Sprintf("data-dir: %v", err))
	} else if err := writableDir(dir); err != nil {
		problems = append(problems, fmt.Sprintf("%sdata-dir %q: %v", src.where("data-dir"), dir, err))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "signald check: %s\n", p)
		}
		return 2
	}
	file := "no config file"
	if cfg.ConfigFile != "" {
		file = cfg.ConfigFile
	}
	n := 0
	for _, s := range src {
		if s != "default" {
			n++
		}
	}
	fmt.Fprintf(stdout, "signald check: configuration OK (%s; options set: %d, the rest default)\n", file, n)
	return 0
}

// writableDir reports whether dir exists (or can be made) and takes files.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	if os.IsNotExist(err) {
		// The daemon creates it; its parent must allow that.
		parent := filepath.Dir(dir)
		if _, err := os.Stat(parent); err != nil {
			return fmt.Errorf("does not exist, nor does its parent: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("not a directory")
	}
	f, err := os.CreateTemp(dir, ".check-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

// printConfig writes the effective configuration as a TOML file that
// -config loads back to the same values: every option with its help, its
// value and where the value came from.
func printConfig(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	secrets := false
	var rest []string
	for _, a := range args {
		if a == "-secrets" || a == "--secrets" {
			secrets = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, src, err := loadConfig(rest, getenv, environ)
	if err != nil {
		fmt.Fprintf(stderr, "signald config print: %v\n", err)
		return 2
	}
	writeConfig(stdout, cfg, src, secrets)
	return 0
}

func writeConfig(w io.Writer, cfg *config, src source, secrets bool) {
	fmt.Fprintf(w, "# signald configuration: load it with -config FILE (or SIGNALD_CONFIG=FILE).\n")
	fmt.Fprintf(w, "# Keys are the flag names. Precedence: default < this file < SIGNALD_* environment < flags.\n")
	if cfg.ConfigFile != "" {
		fmt.Fprintf(w, "# Printed from %s and the environment and flags it ran with.\n", cfg.ConfigFile)
	}
	fs := flagsOf(cfg)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		fmt.Fprintf(w, "\n# %s\n", f.Usage)
		val := tomlValue(f)
		if secretOptions[f.Name] && !secrets && f.Value.String() != "" {
			fmt.Fprintf(w, "# %s = (set, hidden; config print -secrets shows it)  # %s\n", f.Name, src[f.Name])
			return
		}
		fmt.Fprintf(w, "%s = %s  # %s\n", f.Name, val, src[f.Name])
	})
}

// tomlValue renders a flag's value as TOML: booleans and numbers bare,
// strings and durations quoted.
func tomlValue(f *flag.Flag) string {
	switch v := f.Value.(flag.Getter).Get().(type) {
	case bool, int, int64, float64:
		return fmt.Sprint(v)
	case time.Duration:
		return tomlString(v.String())
	default:
		return tomlString(f.Value.String())
	}
}

func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
