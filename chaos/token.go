package chaos

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// The control token: the credential that PUT, PATCH and DELETE of the
// control handler need. The handler's loopback guard proves little on its
// own: a sidecar, an SSH tunnel or socat forwards from a loopback address and
// adds no header, so every process on the machine, and everyone behind such
// a forwarder, would reach it.

// The environment variables TokenFromEnv reads.
const (
	envToken     = "CHAOS_CONTROL_TOKEN"
	envTokenFile = "CHAOS_CONTROL_TOKEN_FILE"
)

const (
	minTokenBytes = 16
	maxTokenBytes = 1024
	wantToken     = "want 16 to 1024 printable ASCII characters without spaces, such as the output of openssl rand -hex 16"
)

// TokenFromEnv reads the control token from CHAOS_CONTROL_TOKEN, or from
// the file CHAOS_CONTROL_TOKEN_FILE names (one trailing newline is not part
// of it). With neither set it returns "", and New generates one. Both set,
// a file that cannot be read, an empty one or a token too short to resist
// guessing are errors of one line naming the variable, and never show the
// token.
func TokenFromEnv(getenv func(string) string) (string, error) {
	token, path := getenv(envToken), getenv(envTokenFile)
	switch {
	case token != "" && path != "":
		return "", fmt.Errorf("%s and %s are both set: set one, the token or the file that holds it", envToken, envTokenFile)
	case token != "":
		if want := checkToken(token); want != "" {
			return "", fmt.Errorf("invalid %s: %s", envToken, want)
		}
		return token, nil
	case path != "":
		return tokenFromFile(path)
	}
	return "", nil
}

func tokenFromFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("invalid %s %q: %v", envTokenFile, path, unwrapPath(err))
	}
	defer f.Close()
	// Bounded, so that a path such as /dev/zero cannot hold up the start.
	raw, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+3))
	if err != nil {
		return "", fmt.Errorf("invalid %s %q: %v", envTokenFile, path, unwrapPath(err))
	}
	token := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if token == "" {
		return "", fmt.Errorf("invalid %s %q: the file is empty; %s", envTokenFile, path, wantToken)
	}
	if want := checkToken(token); want != "" {
		return "", fmt.Errorf("invalid %s %q: %s", envTokenFile, path, want)
	}
	return token, nil
}

// unwrapPath drops the path from a file error: the message names it once.
func unwrapPath(err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

// checkToken says what is wrong with a token, without showing it: "" when
// nothing is. A token must fit an Authorization header as it is sent, and
// be long enough that guessing it is hopeless.
func checkToken(token string) string {
	if len(token) < minTokenBytes {
		return fmt.Sprintf("%d bytes is too short to be a secret; %s", len(token), wantToken)
	}
	if len(token) > maxTokenBytes {
		return fmt.Sprintf("%d bytes is too long; %s", len(token), wantToken)
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return fmt.Sprintf("byte %d is not printable ASCII; %s", i+1, wantToken)
		}
	}
	return ""
}

// generateToken makes a token of 32 random bytes in hex and writes it, with
// a newline, to a new file in os.TempDir that only this user can read
// (os.CreateTemp: mode 0600, and O_EXCL, so no file planted in advance is
// reused). The caller logs the path, never the token.
func generateToken() (token, path string, err error) {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	token = hex.EncodeToString(b[:])
	f, err := os.CreateTemp("", "chaos-control-token-")
	if err != nil {
		return "", "", fmt.Errorf("chaos: cannot write a generated control token: %v; set %s or %s instead", err, envToken, envTokenFile)
	}
	_, err = io.WriteString(f, token+"\n")
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", fmt.Errorf("chaos: cannot write a generated control token to %s: %v; set %s or %s instead", f.Name(), err, envToken, envTokenFile)
	}
	return token, f.Name(), nil
}

// tokenDigest is what the handler compares: digests of equal length, so the
// comparison takes the same time whatever a guess's length and content.
func tokenDigest(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// authorized reports whether r carries the control token as its bearer
// credential, and if not, the line that says what is missing.
func (e *Experiment) authorized(r *http.Request) (ok bool, refusal string) {
	scheme, credential, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false, r.Method + " " + r.URL.Path + " needs Authorization: Bearer and the control token (" + envToken + ", or the file logged as token_file)"
	}
	got := tokenDigest(strings.TrimSpace(credential))
	if subtle.ConstantTimeCompare(got[:], e.tokenDigest[:]) != 1 {
		return false, "wrong control token for " + r.Method + " " + r.URL.Path
	}
	return true, ""
}
