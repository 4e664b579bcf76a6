// SessionServlet is the backend of the servlet tests (servlet_test.go): an
// embedded Tomcat 10 with one servlet mapped to /*, routing as a Java
// session API would, on the container's decoded and normalized path
// (getServletPath() + getPathInfo()).
//
// Usage: java -cp <classes>:<tomcat10-embed-core.jar> SessionServlet <baseDir> <logFile>
//
// It binds 127.0.0.1 on a free port, prints "LISTENING <port>" on stdout once
// Tomcat has started, and exits when its stdin reaches end of file (so it
// dies with the test binary that started it). Every request the servlet sees
// is appended to <logFile> as one JSON line before the answer is written;
// requests Tomcat itself rejects (a 400 before any servlet runs) leave no
// line.

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Collections;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.catalina.Lifecycle;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.core.StandardContext;
import org.apache.catalina.startup.Tomcat;

public class SessionServlet extends HttpServlet {
    private static final long serialVersionUID = 1L;

    // /{app}/accounts/sessions[/{id}]: app is one segment, possibly empty, or
    // absent; id is one non-empty segment.
    private static final Pattern ROUTE =
            Pattern.compile("^(?:/([^/]*))?/accounts/sessions(?:/([^/]+))?$", Pattern.DOTALL);

    private static final String STAMP = "2026-11-25T10:00:00.000Z";

    private final FileOutputStream log;
    private final AtomicLong created = new AtomicLong();

    SessionServlet(FileOutputStream log) {
        this.log = log;
    }

    @Override
    protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
        byte[] body = req.getInputStream().readAllBytes();
        String servletPath = req.getServletPath();
        String pathInfo = req.getPathInfo();
        String path = (servletPath == null ? "" : servletPath) + (pathInfo == null ? "" : pathInfo);
        String method = req.getMethod();

        String route = "none";
        String app = null;
        String id = null;
        int status = 404;
        String answer = "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404}";
        String contentType = "application/problem+json";
        String location = null;
        Matcher m = ROUTE.matcher(path);
        if (m.matches()) {
            app = m.group(1);
            String item = m.group(2);
            if (item == null && method.equals("GET")) {
                route = "listSessions";
                status = 200;
                answer = "[]";
                contentType = "application/json";
            } else if (item == null && method.equals("POST")) {
                id = "created-" + created.incrementAndGet();
                route = "createSession";
                status = 201;
                answer = session(id);
                contentType = "application/json";
                location = (app == null ? "" : "/" + app) + "/accounts/sessions/" + id;
            } else if (item != null && method.equals("GET")) {
                id = item;
                route = "getSession:" + id;
                status = 200;
                answer = session(id);
                contentType = "application/json";
            } else if (item != null && method.equals("PUT")) {
                id = item;
                route = "updateSession:" + id;
                status = 200;
                answer = session(id);
                contentType = "application/json";
            } else if (item != null && method.equals("DELETE")) {
                id = item;
                route = "deleteSession:" + id;
                status = 204;
                answer = null;
            }
        }

        StringBuilder line = new StringBuilder(256);
        line.append("{\"method\":").append(quote(method));
        line.append(",\"requestURI\":").append(quote(req.getRequestURI()));
        line.append(",\"servletPath\":").append(quote(servletPath));
        line.append(",\"pathInfo\":").append(quote(pathInfo));
        line.append(",\"queryString\":").append(quote(req.getQueryString()));
        line.append(",\"route\":").append(quote(route));
        line.append(",\"app\":").append(quote(app));
        line.append(",\"status\":").append(status);
        line.append(",\"headers\":[");
        Set<String> seen = new HashSet<>();
        boolean first = true;
        for (String name : Collections.list(req.getHeaderNames())) {
            if (!seen.add(name.toLowerCase(Locale.ROOT))) {
                continue;
            }
            for (String value : Collections.list(req.getHeaders(name))) {
                line.append(first ? "" : ",").append('[').append(quote(name)).append(',').append(quote(value)).append(']');
                first = false;
            }
        }
        line.append("],\"body\":").append(quote(Base64.getEncoder().encodeToString(body)));
        line.append("}\n");
        record(line.toString().getBytes(StandardCharsets.UTF_8));

        resp.setStatus(status);
        if (location != null) {
            resp.setHeader("Location", location);
        }
        if (id != null && answer != null) {
            resp.setHeader("ETag", "\"v1\"");
        }
        if (answer != null) {
            byte[] out = answer.getBytes(StandardCharsets.UTF_8);
            resp.setContentType(contentType);
            resp.setContentLength(out.length);
            resp.getOutputStream().write(out);
        }
    }

    // record appends one line with a single write (the log is opened for
    // appending, so a reader truncating it between requests is safe).
    private synchronized void record(byte[] line) throws IOException {
        log.write(line);
        log.flush();
    }

    private static String session(String id) {
        return "{\"id\":" + quote(id) + ",\"created\":\"" + STAMP + "\",\"timeout\":600,\"lastActive\":\"" + STAMP
                + "\",\"payload\":{}}";
    }

    // quote is a JSON string (or null); everything outside printable ASCII is
    // a backslash-u escape, so the log is ASCII whatever the request held.
    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    private static void set(Connector c, String name, String value) {
        if (!c.setProperty(name, value)) {
            throw new IllegalStateException("connector property " + name + " is not supported by this Tomcat");
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: SessionServlet <baseDir> <logFile>");
            System.exit(2);
        }
        String base = args[0];
        FileOutputStream log = new FileOutputStream(args[1], true);

        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(base);
        tomcat.setHostname("127.0.0.1");
        tomcat.setPort(0);
        Connector c = tomcat.getConnector();
        set(c, "address", "127.0.0.1");
        // Lenient, as many production deployments are: %2F and %5C decode to
        // / and \ (then \ counts as /), raw \ is allowed, the characters
        // browsers send unescaped are allowed in paths and queries, illegal
        // header lines are dropped rather than answered 400, and the Servlet
        // 6 "suspicious URI" checks stay off (Tomcat 10.1's default).
        c.setEncodedSolidusHandling("decode");
        c.setEncodedReverseSolidusHandling("decode");
        c.setAllowBackslash(true);
        c.setRejectSuspiciousURIs(false);
        set(c, "relaxedPathChars", "[]|{}^\\`\"<>");
        set(c, "relaxedQueryChars", "[]|{}^\\`\"<>");
        set(c, "rejectIllegalHeader", "false");
        set(c, "allowHostHeaderMismatch", "true");

        // The root context, made by hand rather than with tomcat.addContext:
        // its FixContextListener reads servlet annotations, which needs
        // jakarta.annotation, and Debian's embed jar comes without it.
        StandardContext ctx = new StandardContext();
        ctx.setName("");
        ctx.setPath("");
        ctx.setDocBase(base);
        ctx.addLifecycleListener(event -> {
            if (Lifecycle.CONFIGURE_START_EVENT.equals(event.getType())) {
                ctx.setConfigured(true);
            }
        });
        tomcat.getHost().addChild(ctx);
        Tomcat.addServlet(ctx, "sessions", new SessionServlet(log));
        ctx.addServletMapping("/*", "sessions");
        try {
            tomcat.start();
        } catch (Throwable e) {
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        if (!ctx.getState().isAvailable() || !c.getState().isAvailable()) {
            System.err.println("Tomcat did not start: context " + ctx.getState() + ", connector " + c.getState());
            Runtime.getRuntime().halt(1);
        }

        int port = c.getLocalPort();
        if (port <= 0) {
            System.err.println("Tomcat did not bind a port (connector state " + c.getState() + ")");
            Runtime.getRuntime().halt(1);
        }
        System.out.println("LISTENING " + port);
        System.out.flush();

        // Die with the parent: its end of stdin closes when it exits.
        while (System.in.read() != -1) {
            // nothing is expected on stdin
        }
        Runtime.getRuntime().halt(0);
    }
}
