package ownidsessions

// A real servlet container as a forward-mode backend: Tomcat 10.1 embedded
// (Debian's libtomcat10-embed-java, /usr/share/java/tomcat10-embed-core.jar)
// running testdata/servlet/SessionServlet.java, which records every request
// it receives and routes it as a Java session API would, on the container's
// decoded and normalized path getServletPath()+getPathInfo() (servlet mapped
// to /*, so the servlet path is "" and the path info is the whole path):
//
//	/{app}/accounts/sessions       GET listSessions 200 [], POST createSession 201
//	/{app}/accounts/sessions/{id}  GET getSession:<id> 200, PUT updateSession:<id> 200, DELETE deleteSession:<id> 204
//	anything else                  route "none", 404 problem+json
//
// where app is one segment (possibly empty) or absent, and id one non-empty
// segment. The connector is set up leniently, as many production deployments
// are (all of these setters exist in Tomcat 10.1.60):
//
//	encodedSolidusHandling="decode"         %2F is decoded to / (default reject: 400)
//	encodedReverseSolidusHandling="decode"  %5C is decoded to \ (then \ counts as /)
//	allowBackslash=true                     \ is a separator (default false: 400 for \ and %5C)
//	rejectSuspiciousURIs=false              Servlet 6 "suspicious URI" checks off (the default)
//	relaxedPathChars / relaxedQueryChars    []|{}^\`"<> accepted unencoded
//	rejectIllegalHeader=false               illegal header lines dropped, not 400
//	allowHostHeaderMismatch=true            absolute-form targets whose host differs from Host are served
//
// What this Tomcat does with each spelling (asserted by TestServletBackend;
// "400" means Tomcat answered before any servlet ran, so nothing is recorded):
//
//	request target                           Tomcat   getPathInfo()               servlet route
//	/app/accounts/sessions                   served   /app/accounts/sessions      listSessions
//	/app/accounts;x=1/sessions               served   /app/accounts/sessions      listSessions  (;params stripped)
//	PUT /app/accounts;/sessions/s1           served   /app/accounts/sessions/s1   updateSession:s1
//	/app;a/accounts;b/sessions;c/s1;d        served   /app/accounts/sessions/s1   getSession:s1
//	/app/accounts/sessions;jsessionid=1      served   /app/accounts/sessions      listSessions
//	/app/accounts/sessions/s1%3bx            served   /app/accounts/sessions/s1;x getSession:s1;x (encoded ; is data)
//	/app/accounts/%73essions                 served   /app/accounts/sessions      listSessions  (%-decoded)
//	/app/./accounts/sessions                 served   /app/accounts/sessions      listSessions
//	/app/x/../accounts/sessions              served   /app/accounts/sessions      listSessions
//	/x/..;/app/accounts/sessions             served   /app/accounts/sessions      listSessions  (..;  is ..)
//	/app/accounts/ses%73ions/%2e%2e/sessions served   /app/accounts/sessions      listSessions  (%2e%2e is ..)
//	/app/accounts/sessions/%2e               served   /app/accounts/sessions      listSessions
//	/app/accounts/sessions/%2e%2e            served   /app/accounts               none
//	//app/accounts/sessions                  served   /app/accounts/sessions      listSessions  (// merged; app "app")
//	/app/accounts\sessions                   served   /app/accounts/sessions      listSessions  (\ is /)
//	/app/accounts%5csessions (and %5C)       served   /app/accounts/sessions      listSessions
//	/app/accounts%2fsessions                 served   /app/accounts/sessions      listSessions
//	DELETE /app/accounts%2Fsessions/s1       served   /app/accounts/sessions/s1   deleteSession:s1
//	/app/accounts/sessions/a%2fb             served   /app/accounts/sessions/a/b  none
//	/app/accounts%252fsessions               served   /app/accounts%2fsessions    none          (decoded once)
//	/app/accounts/sessions%3f                served   /app/accounts/sessions?     none
//	/app/accounts/sessions%2f                served   /app/accounts/sessions/     none
//	/app/accounts/sessions/                  served   /app/accounts/sessions/     none          (this router's choice)
//	/app/accounts/sessions/abc/extra         served   (same)                      none
//	/app/accounts/%C5%BFessions (ſ)          served   /app/accounts/ſessions      none          (no case folding)
//	/app/ACCOUNTS/sessions                   served   (same)                      none          (case-sensitive)
//	/accounts/sessions                       served   /accounts/sessions          listSessions  (app absent)
//	http://evil/app/accounts/sessions        served   /app/accounts/sessions      listSessions  (getRequestURI is the path)
//	/app/accounts/sessions?a=%zz             served   /app/accounts/sessions      listSessions  (bad query escapes ignored)
//	/app/accounts/sessions%00                400
//	/app/accounts/sessions/%C5 (bad UTF-8)   400
//	/../app/accounts/sessions                400      (.. above the root)
//	/app/accounts/sessions#x                 400
//
// With Tomcat's defaults instead, \, %5C, %2F, unencoded | and the like, and
// the absolute form with a foreign host are 400, while ;params, //, ..; and
// %2e%2e behave as above.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// servletTomcatJar is Debian's embedded Tomcat 10 (package
// libtomcat10-embed-java); it holds the servlet API as well.
const servletTomcatJar = "/usr/share/java/tomcat10-embed-core.jar"

// servletSource is the servlet and the main that embeds Tomcat.
const servletSource = "testdata/servlet/SessionServlet.java"

// servletBackend is a real Tomcat 10 (Debian's libtomcat10-embed-java)
// running a small servlet that records every request it receives and routes
// it as a Java session API would.
type servletBackend struct {
	URL  string // http://127.0.0.1:<port>
	Addr string // 127.0.0.1:<port>

	log  string // the servlet's JSON-lines record of requests
	cmd  *exec.Cmd
	out  *servletOutput
	done chan error
}

// servletRequest is one request as the servlet saw it.
type servletRequest struct {
	// As the servlet API reports them: RequestURI is raw (undecoded, with
	// ;params, without the query), ServletPath and PathInfo are decoded and
	// normalized; a null is "".
	Method, RequestURI, ServletPath, PathInfo, QueryString string
	// Route is what the servlet's router decided: "listSessions",
	// "getSession:<id>", "createSession", "updateSession:<id>",
	// "deleteSession:<id>", or "none".
	Route string
	// App is the {app} segment the router matched ("" when absent or empty).
	App string
	// Status is what the servlet answered.
	Status int
	// Headers as received, under canonical names (http.Header(h).Get works);
	// values are the raw bytes (Tomcat reads headers as ISO-8859-1).
	Headers map[string][]string
	// Body is the request body, byte for byte.
	Body string
}

// startServlet compiles the servlet into a temporary directory, starts an
// embedded Tomcat on a free 127.0.0.1 port and waits until it listens. The
// JVM is killed when the test ends, and dies with the test binary (Pdeathsig
// on Linux; everywhere, it exits when its stdin pipe closes). Without java,
// javac or the Tomcat jar the test fails under CI and skips elsewhere.
func startServlet(t *testing.T) *servletBackend {
	t.Helper()
	var missing []string
	java, err := exec.LookPath("java")
	if err != nil {
		missing = append(missing, "java")
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		missing = append(missing, "javac")
	}
	if _, err := os.Stat(servletTomcatJar); err != nil {
		missing = append(missing, servletTomcatJar)
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s: .ci/run installs Debian's libtomcat10-embed-java (and default-jdk-headless)", strings.Join(missing, ", "))
		}
		t.Skipf("no %s (apt-get install libtomcat10-embed-java default-jdk-headless): the servlet backend tests do not run here", strings.Join(missing, ", "))
	}
	src, err := filepath.Abs(servletSource)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	dir := t.TempDir()
	classes := filepath.Join(dir, "classes")
	// The JVM flags keep javac's and Tomcat's start-up short: no optimizing
	// JIT, the serial collector, no perf-data file in /tmp.
	jvm := []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.io.tmpdir=" + dir}
	var jflags []string
	for _, f := range jvm {
		jflags = append(jflags, "-J"+f)
	}
	compile := exec.Command(javac, append(jflags, "-nowarn", "-encoding", "UTF-8", "-d", classes, "-cp", servletTomcatJar, src)...)
	if out, err := compile.CombinedOutput(); err != nil {
		t.Fatalf("javac %s: %v\n%s", servletSource, err, out)
	}

	s := &servletBackend{log: filepath.Join(dir, "requests.jsonl"), out: &servletOutput{listening: make(chan int, 1)}, done: make(chan error, 1)}
	if err := os.WriteFile(s.log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, jvm...), "-Xmx256m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-cp", classes+string(os.PathListSeparator)+servletTomcatJar, "SessionServlet", dir, s.log)
	s.cmd = exec.Command(java, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = servletProcAttr()
	stdin, err := s.cmd.StdinPipe() // never written; the JVM exits when it closes
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		killServlet(s.cmd.Process)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the Tomcat process %d did not exit", s.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("Tomcat's output:\n%s", s.out.String())
		}
	})

	var port int
	select {
	case port = <-s.out.listening:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("Tomcat exited before listening (%v):\n%s", err, s.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("Tomcat did not listen within 60s:\n%s", s.out.String())
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.URL = "http://" + s.Addr
	// It printed its port after starting; check it accepts connections
	// (without a request, which would be recorded).
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Tomcat does not accept connections on %s: %v\n%s", s.Addr, err, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("Tomcat (servlet backend) on %s, compiled and started in %v", s.URL, time.Since(start).Round(time.Millisecond))
	return s
}

// received is every request the servlet has seen since it started or was
// last reset, in order. The servlet records a request before answering it,
// so every request answered so far is there.
func (s *servletBackend) received(t *testing.T) []servletRequest {
	t.Helper()
	data, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []servletRequest
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a line still being written: its request is not answered yet
		}
		line := data[:i]
		data = data[i+1:]
		var rec struct {
			Method, RequestURI, ServletPath, PathInfo, QueryString, Route, App string
			Status                                                             int
			Headers                                                            [][2]string
			Body                                                               string
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("servlet log line %q: %v", line, err)
		}
		body, err := base64.StdEncoding.DecodeString(rec.Body)
		if err != nil {
			t.Fatalf("servlet log body %q: %v", rec.Body, err)
		}
		r := servletRequest{
			Method: rec.Method, RequestURI: rec.RequestURI, ServletPath: rec.ServletPath, PathInfo: rec.PathInfo,
			QueryString: rec.QueryString, Route: rec.Route, App: rec.App, Status: rec.Status,
			Headers: map[string][]string{}, Body: string(body),
		}
		for _, h := range rec.Headers {
			name := http.CanonicalHeaderKey(latin1Bytes(h[0]))
			r.Headers[name] = append(r.Headers[name], latin1Bytes(h[1]))
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// reset forgets the requests received so far. Call it between requests,
// not while one is in flight.
func (s *servletBackend) reset(t *testing.T) {
	t.Helper()
	// The servlet appends (O_APPEND), so it writes at the new end.
	if err := os.Truncate(s.log, 0); err != nil {
		t.Fatal(err)
	}
}

// exchange sends raw, a whole HTTP/1.1 request exactly as given (no client
// normalizes the target), on a new connection and reads one answer.
func (s *servletBackend) exchange(t *testing.T, raw string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer from Tomcat to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// servletRaw is a bodiless request for target, verbatim.
func servletRaw(method, target string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
}

// latin1Bytes turns a Java string read as ISO-8859-1 back into its bytes.
func latin1Bytes(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return s
		}
		b = append(b, byte(r))
	}
	return string(b)
}

// servletOutput collects the JVM's stdout and stderr and reports the port
// of its "LISTENING <port>" line.
type servletOutput struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	listening chan int
	seen      bool
}

var servletListening = regexp.MustCompile(`(?m)^LISTENING (\d+)\r?$`)

func (o *servletOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.seen {
		if m := servletListening.FindSubmatch(o.buf.Bytes()); m != nil {
			port, _ := strconv.Atoi(string(m[1]))
			o.seen = true
			o.listening <- port
		}
	}
	return len(p), nil
}

func (o *servletOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
