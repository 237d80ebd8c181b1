package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"example.com/shopsession/internal/redistest"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRedissURL runs the production binary against a redis-server that
// speaks only TLS, with a CA the test makes. The binary trusts the CA through
// SSL_CERT_FILE, as any Go program on Linux does; without it, the connection
// is refused and the page renders without recommendations.
func TestRedissURL(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	server, err := redistest.StartOn(port, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)

	binary := filepath.Join(t.TempDir(), "shopsession")
	goBuild(t, ".", binary)
	url := "rediss://127.0.0.1:" + strconv.Itoa(port) + "/0"

	trusted := startBinary(t, binary, "REDIS_URL="+url, "SSL_CERT_FILE="+caFile)
	if resp := trusted.get(t, "/readyz", ""); resp.status != 200 {
		t.Errorf("GET /readyz over TLS = %d %q", resp.status, resp.body)
	}
	if resp := trusted.searchFor(t, uuid.NewString(), "apple"); !hasRecommendation(resp.body) {
		t.Errorf("no recommendation over TLS; log:\n%s", trusted.logs.String())
	}

	untrusted := startBinary(t, binary, "REDIS_URL="+url, "SSL_CERT_FILE="+filepath.Join(dir, "no-such-ca.pem"))
	if resp := untrusted.searchFor(t, uuid.NewString(), "apple"); resp.status != 200 || hasRecommendation(resp.body) {
		t.Errorf("with an unknown CA: status %d, recommendation %v; want 200 without", resp.status, hasRecommendation(resp.body))
	}
	untrusted.logs.waitFor(t, regexp.MustCompile(`redis error [^"]*certificate`))
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed by
// it, and returns the CA, certificate and key file names.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shopsession test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", leafDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}
