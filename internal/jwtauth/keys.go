package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// keyKind is the kind of key an algorithm verifies with.
type keyKind int

const (
	keyHMAC keyKind = iota
	keyRSA
	keyP256
	keyP384
	keyP521
	keyEd25519
)

// algorithms maps every accepted algorithm to the one kind of key it may use.
var algorithms = map[string]keyKind{
	"HS256": keyHMAC, "HS384": keyHMAC, "HS512": keyHMAC,
	"RS256": keyRSA, "RS384": keyRSA, "RS512": keyRSA,
	"PS256": keyRSA, "PS384": keyRSA, "PS512": keyRSA,
	"ES256": keyP256, "ES384": keyP384, "ES512": keyP521,
	"EdDSA": keyEd25519,
}

// UsesSecret says whether alg is an algorithm this package accepts (known)
// and, if so, whether it signs with an HMAC secret rather than a private key.
func UsesSecret(alg string) (secret, known bool) {
	kind, known := algorithms[alg]
	return known && kind == keyHMAC, known
}

var keyKindNames = [...]string{
	keyHMAC: "an HMAC secret", keyRSA: "an RSA key", keyP256: "an EC P-256 key",
	keyP384: "an EC P-384 key", keyP521: "an EC P-521 key", keyEd25519: "an Ed25519 key",
}

type publicKey struct {
	kind keyKind
	key  any
}

// loadPublicKeys reads every public key in a PEM file. Private keys are
// refused: the edge needs only the public half.
func loadPublicKeys(file string) ([]publicKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []publicKey
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("%s: holds a private key; give the public key only", file)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		k, err := classifyKey(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", file)
	}
	return keys, nil
}

func classifyKey(pub any) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
		return publicKey{keyRSA, k}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return publicKey{keyP256, k}, nil
		case elliptic.P384():
			return publicKey{keyP384, k}, nil
		case elliptic.P521():
			return publicKey{keyP521, k}, nil
		}
		return publicKey{}, fmt.Errorf("EC curve %s is not supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return publicKey{keyEd25519, k}, nil
	}
	return publicKey{}, fmt.Errorf("unsupported key type %T", pub)
}
