package ownidsessions

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "ownid-token",
		Usage: "--sub <sub> [--secret <s>] [--alg HS256] [--key <private-pem>] [--ttl 1h] [--iss <iss>] [--aud <aud>]",
		Short: "Prints a signed bearer token for trying out ownid_sessions",
		Long: `
Prints a JWT that the ownid_sessions handler accepts, for trying the session
API out. With an HS* algorithm the token is signed with --secret, or with the
OWNID_JWT_SECRET environment variable when --secret is not given; with any
other algorithm it is signed with the private key in the PEM file --key.
The token carries sub, iat and exp (now + --ttl), and iss and aud when given.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("secret", "", "HMAC secret (default: $OWNID_JWT_SECRET)")
			cmd.Flags().String("sub", "", "the account the token speaks for (required)")
			cmd.Flags().String("alg", "HS256", "signing algorithm")
			cmd.Flags().String("key", "", "PEM file with the private key, for RS*, PS*, ES* and EdDSA")
			cmd.Flags().Duration("ttl", time.Hour, "lifetime of the token")
			cmd.Flags().String("iss", "", "issuer claim")
			cmd.Flags().String("aud", "", "audience claim")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdOwnIDToken)
		},
	})
}

func cmdOwnIDToken(fl caddycmd.Flags) (int, error) {
	opts := tokenOptions{
		secret: fl.String("secret"),
		sub:    fl.String("sub"),
		alg:    fl.String("alg"),
		key:    fl.String("key"),
		ttl:    fl.Duration("ttl"),
		iss:    fl.String("iss"),
		aud:    fl.String("aud"),
	}
	if opts.secret == "" {
		opts.secret = os.Getenv("OWNID_JWT_SECRET")
	}
	token, err := mintToken(opts, time.Now())
	if err != nil {
		return 1, err
	}
	fmt.Println(token)
	return 0, nil
}

type tokenOptions struct {
	secret, sub, alg, key, iss, aud string
	ttl                             time.Duration
}

// mintToken signs a token with the claims the handler expects.
func mintToken(o tokenOptions, now time.Time) (string, error) {
	if o.sub == "" {
		return "", fmt.Errorf("--sub is required")
	}
	if o.ttl <= 0 {
		return "", fmt.Errorf("--ttl must be positive")
	}
	secret, ok := jwtauth.UsesSecret(o.alg)
	if !ok {
		return "", fmt.Errorf("--alg: unknown algorithm %q", o.alg)
	}
	claims := jwt.MapClaims{
		"sub": o.sub,
		"iat": now.Unix(),
		"exp": now.Add(o.ttl).Unix(),
	}
	if o.iss != "" {
		claims["iss"] = o.iss
	}
	if o.aud != "" {
		claims["aud"] = o.aud
	}
	var key any
	if secret {
		if o.secret == "" {
			return "", fmt.Errorf("--secret (or OWNID_JWT_SECRET) is required for %s", o.alg)
		}
		key = []byte(o.secret)
	} else {
		if o.key == "" {
			return "", fmt.Errorf("--key is required for %s", o.alg)
		}
		priv, err := loadPrivateKey(o.key)
		if err != nil {
			return "", fmt.Errorf("--key: %v", err)
		}
		key = priv
	}
	return jwt.NewWithClaims(jwt.GetSigningMethod(o.alg), claims).SignedString(key)
}

func loadPrivateKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported private key type %T", file, key)
	}
	return signer, nil
}
