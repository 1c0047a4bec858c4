package stunturn

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // RFC 5389 long-term credentials are defined with MD5
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the TURN REST scheme is defined with HMAC-SHA1
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SecretSize is the length of a secret made by LoadOrCreateSecret.
const SecretSize = 32

// NewCredentials returns TURN REST API credentials
// (draft-uberti-behave-turn-rest-00, as coturn's use-auth-secret): the
// username is "<unix expiry>:<user>" and the password is
// base64(HMAC-SHA1(secret, username)). They are valid until now+ttl; an
// allocation made with them ends then. user may contain any character but
// should be short; it is the unit of Config.UserQuota.
func NewCredentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, restPassword(secret, username)
}

func restPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// longTermKey is the RFC 5389 long-term credential key MD5(user:realm:pass).
func longTermKey(username, realm, password string) []byte {
	h := md5.Sum([]byte(username + ":" + realm + ":" + password)) //nolint:gosec // see import
	return h[:]
}

// parseREST splits a REST username "<expiry>:<user>". ok is false when the
// username does not have that shape.
func parseREST(username string) (expiry time.Time, user string, ok bool) {
	ts, user, found := strings.Cut(username, ":")
	if !found || ts == "" || len(ts) > 12 {
		return time.Time{}, "", false
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return time.Time{}, "", false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(n, 0), user, true
}

// Why authentication failed: the "reason" label of
// signald_turn_auth_failures_total.
const (
	authUnknownUser  = "unknown_user"  // not a REST username and no such static user
	authExpired      = "expired"       // REST credential past its expiry
	authBadRealm     = "bad_realm"     // REALM is not ours
	authBadIntegrity = "bad_integrity" // wrong password or secret (MESSAGE-INTEGRITY check failed)
)

var authReasons = []string{authUnknownUser, authExpired, authBadRealm, authBadIntegrity}

// authenticator resolves usernames to long-term keys. It is immutable and
// safe for concurrent use.
type authenticator struct {
	realm   string
	secrets [][]byte
	static  map[string]string
}

// account is what an allocation knows about the credential that made it.
type account struct {
	quotaKey string    // per-user quota bucket
	expiry   time.Time // zero for static users
}

// accountOf maps the userID our key function returned (the username as
// sent) back to its quota key and expiry.
func accountOf(userID string) account {
	if exp, user, ok := parseREST(userID); ok {
		return account{quotaKey: "rest:" + user, expiry: exp}
	}
	return account{quotaKey: "static:" + userID}
}

// key returns the long-term key for username, or a failure reason. For REST
// usernames it tries every secret: the returned key is the one whose
// password... cannot be known before MESSAGE-INTEGRITY is checked, so keyFor
// returns all candidate keys and the caller picks the one that verifies.
func (a *authenticator) keys(username, realm string, now time.Time) ([][]byte, string) {
	if realm != a.realm {
		return nil, authBadRealm
	}
	if exp, _, ok := parseREST(username); ok {
		if !now.Before(exp) {
			return nil, authExpired
		}
		keys := make([][]byte, len(a.secrets))
		for i, s := range a.secrets {
			keys[i] = longTermKey(username, realm, restPassword(s, username))
		}
		if len(keys) == 0 {
			return nil, authUnknownUser
		}
		return keys, ""
	}
	if pass, ok := a.static[username]; ok {
		return [][]byte{longTermKey(username, realm, pass)}, ""
	}
	return nil, authUnknownUser
}

// validStaticUser reports whether name can be a static user: it must not look
// like a REST username, or it would never be looked up.
func validStaticUser(name string) bool {
	_, _, rest := parseREST(name)
	return name != "" && !rest
}

func equalKeys(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// LoadOrCreateSecret returns the secret stored at path. If the file does not
// exist it writes SecretSize random bytes there with mode 0600 (creating the
// directory with 0700) and returns them. A file that exists but is empty,
// shorter than 16 bytes or readable by group or others is an error: a
// secret that may have leaked must be replaced by the operator.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("stat turn secret: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("turn secret %s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		if len(b) < 16 {
			return nil, fmt.Errorf("turn secret %s: %d bytes, want at least 16", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read turn secret: %w", err)
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate turn secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create turn secret: %w", err)
	}
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create turn secret: %w", err)
	}
	if _, err := f.Write(secret); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write turn secret: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write turn secret: %w", err)
	}
	return secret, nil
}
