// A TLCP (GM/T 0024) peer on github.com/tjfoc/gmsm's gmtls: an implementation independent of Tongsuo.
// Built by tests/sdk/gmtls/test_gmsm_interop.py in a temporary module.
//
//	gmsm_peer client ADDR CA SERVER_NAME [SIGN_CRT SIGN_KEY ENC_CRT ENC_KEY]
//	gmsm_peer server CA SIGN_CRT SIGN_KEY ENC_CRT ENC_KEY [require-client-cert]
//
// The client sends a message and prints the reply; the server prints "LISTEN addr", answers one connection with
// the message in upper case and prints what it negotiated.  Any failure prints "ERR reason" and exits 1.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/tjfoc/gmsm/gmtls"
	"github.com/tjfoc/gmsm/x509"
)

const message = "ping from gmsm"

func fail(err error) {
	fmt.Println("ERR", err)
	os.Exit(1)
}

func pool(caFile string) *x509.CertPool {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		fail(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		fail(fmt.Errorf("no certificate in %s", caFile))
	}
	return p
}

func pairs(files []string) []gmtls.Certificate {
	var out []gmtls.Certificate
	for i := 0; i+1 < len(files); i += 2 {
		c, err := gmtls.LoadX509KeyPair(files[i], files[i+1])
		if err != nil {
			fail(err)
		}
		out = append(out, c)
	}
	return out
}

func client(args []string) {
	cfg := &gmtls.Config{GMSupport: &gmtls.GMSupport{}, RootCAs: pool(args[1]), ServerName: args[2]}
	if mine := pairs(args[3:]); len(mine) == 2 {
		// GM/T 0024 sends the sign and the enc certificate in one Certificate message; gmsm's own pick sends
		// only the first pair, so hand it both (the sign key signs CertificateVerify)
		both := gmtls.Certificate{Certificate: [][]byte{mine[0].Certificate[0], mine[1].Certificate[0]},
			PrivateKey: mine[0].PrivateKey}
		cfg.GetClientCertificate = func(*gmtls.CertificateRequestInfo) (*gmtls.Certificate, error) {
			return &both, nil
		}
	}
	conn, err := gmtls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", args[0], cfg)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(message)); err != nil {
		fail(err)
	}
	reply := make([]byte, len(message))
	if _, err := io.ReadFull(conn, reply); err != nil {
		fail(err)
	}
	st := conn.ConnectionState()
	fmt.Printf("OK version=%#04x suite=%#04x reply=%s\n", st.Version, st.CipherSuite, reply)
}

func server(args []string) {
	cfg := &gmtls.Config{GMSupport: &gmtls.GMSupport{}, ClientCAs: pool(args[0]), Certificates: pairs(args[1:5])}
	if len(args) > 5 && args[5] == "require-client-cert" {
		cfg.ClientAuth = gmtls.RequireAndVerifyClientCert
	}
	ln, err := gmtls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		fail(err)
	}
	fmt.Println("LISTEN", ln.Addr().String())
	raw, err := ln.Accept()
	if err != nil {
		fail(err)
	}
	conn := raw.(*gmtls.Conn)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		fail(err)
	}
	if _, err := conn.Write(bytes.ToUpper(buf[:n])); err != nil {
		fail(err)
	}
	st := conn.ConnectionState()
	peers := len(st.PeerCertificates)
	subject := ""
	if peers > 0 {
		subject = st.PeerCertificates[0].Subject.CommonName
	}
	fmt.Printf("OK version=%#04x suite=%#04x got=%s peer=%s\n", st.Version, st.CipherSuite, buf[:n], subject)
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: gmsm_peer client|server ..."))
	}
	switch os.Args[1] {
	case "client":
		client(os.Args[2:])
	case "server":
		server(os.Args[2:])
	default:
		fail(fmt.Errorf("unknown mode %s", os.Args[1]))
	}
}
