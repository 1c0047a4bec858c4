package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeTLS gets and renews the Box's certificate from an ACME CA
// (-acme-domain). The CA validates by tls-alpn-01 on -addr (port 443 of the
// domain must reach it) or, with -acme-http-addr, by http-01 there too.
// Certificates and the account key live in <data-dir>/acme.
type acmeTLS struct {
	m         *autocert.Manager
	transport *http.Transport
	domain    string // the first of -acme-domain: for clients that send no SNI
}

func newACME(c *config, getenv func(string) string) (*acmeTLS, error) {
	dir, err := c.dataDir(getenv)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.ACMECAFile != "" {
		pool, err := loadCAFile(c.ACMECAFile)
		if err != nil {
			return nil, fmt.Errorf("acme-ca-file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	domains := list(c.ACMEDomain)
	a := &acmeTLS{transport: tr, domain: domains[0]}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(dir, "acme")),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      c.ACMEEmail,
		Client: &acme.Client{
			DirectoryURL: c.ACMEDirURL,
			HTTPClient:   &http.Client{Transport: tr, Timeout: time.Minute},
			UserAgent:    "signald",
		},
	}
	return a, nil
}

func (a *acmeTLS) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		// TURN clients and IP-address URLs send no SNI: serve the Box's name.
		h := *hello
		h.ServerName = a.domain
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// serveHTTP01 answers http-01 challenges on addr until stop is called;
// other requests are redirected to https.
func (a *acmeTLS) serveHTTP01(addr string, b *box) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (acme-http-addr): %w", addr, err)
	}
	srv := &http.Server{Handler: a.m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			b.log.Warn("acme http-01 listener stopped", "err", err)
		}
	}()
	b.log.Info("answering ACME http-01 challenges", "addr", ln.Addr().String())
	return func() {
		srv.Close()
		<-done
	}, nil
}

func (a *acmeTLS) close() { a.transport.CloseIdleConnections() }
