package jwtauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadPublicKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var data []byte
		for _, b := range blocks {
			data = append(data, pem.EncodeToMemory(b)...)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	// A self-signed certificate carrying the EC P-256 test key.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &testKeys.EC256.PublicKey, testKeys.EC256)
	if err != nil {
		t.Fatal(err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalPKIXPublicKey(&p224.PublicKey)

	tests := []struct {
		file  string
		kinds []keyKind
		err   string
	}{
		{testKeys.RSAPEM, []keyKind{keyRSA}, ""},
		{testKeys.ECPEM, []keyKind{keyP256, keyP384, keyP521}, ""},
		{testKeys.EdPEM, []keyKind{keyEd25519}, ""},
		{write("pkcs1.pem", &pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&testKeys.RSA.PublicKey)}), []keyKind{keyRSA}, ""},
		{write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: certDER}), []keyKind{keyP256}, ""},
		{write("weak.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: weakDER}), nil, "too weak"},
		{write("p224.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: p224DER}), nil, "P-224 is not supported"},
		{testKeys.PrivPEM, nil, "holds a private key"},
		{write("empty.pem"), nil, "no PEM public key"},
		{filepath.Join(dir, "missing.pem"), nil, "no such file"},
	}
	for _, tt := range tests {
		keys, err := loadPublicKeys(tt.file)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", filepath.Base(tt.file), err, tt.err)
			}
			continue
		}
		if err != nil || len(keys) != len(tt.kinds) {
			t.Errorf("%s: %d keys, %v", filepath.Base(tt.file), len(keys), err)
			continue
		}
		for i, k := range keys {
			if k.kind != tt.kinds[i] {
				t.Errorf("%s key %d: kind %s, want %s", filepath.Base(tt.file), i, keyKindNames[k.kind], keyKindNames[tt.kinds[i]])
			}
		}
	}
}

// TestAlgorithmsHaveOneKeyKind: every accepted algorithm names the kind of
// key it verifies with, and "none" is not among them.
func TestAlgorithmsHaveOneKeyKind(t *testing.T) {
	if _, ok := algorithms["none"]; ok {
		t.Fatal("none is an accepted algorithm")
	}
	for alg, kind := range algorithms {
		if int(kind) >= len(keyKindNames) || keyKindNames[kind] == "" {
			t.Errorf("%s has no key kind", alg)
		}
	}
}

// TestUsesSecret: what the ownid-token command asks of an algorithm.
func TestUsesSecret(t *testing.T) {
	for alg, want := range map[string][2]bool{
		"HS256": {true, true}, "HS512": {true, true}, "RS256": {false, true},
		"EdDSA": {false, true}, "none": {false, false}, "hs256": {false, false},
	} {
		if secret, known := UsesSecret(alg); secret != want[0] || known != want[1] {
			t.Errorf("%s: secret %v known %v, want %v", alg, secret, known, want)
		}
	}
}
