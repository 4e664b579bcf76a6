package ownidsessions

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace, metricsSubsystem = "caddy", "ownid_sessions"

// metrics are the module's collectors. They are made once per process and
// registered on each config's registry (Caddy's own pattern), so counts
// survive reloads. Every label takes a bounded set of values: operations of
// the document, status classes, problem types, failure reasons.
var metrics = struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	tokenFailures *prometheus.CounterVec
	tokenCache    *prometheus.CounterVec
	jwksFetches   *prometheus.CounterVec
	responses     *prometheus.CounterVec
	liveSessions  prometheus.Collector
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "requests_total",
		Help: "Requests on the contract's paths by operation and outcome: the status class answered (\"forwarded\" when the next handler answers unchecked) and the problem type of a rejection.",
	}, []string{"operation", "status_class", "problem"}),
	duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name:    "handler_duration_seconds",
		Help:    "Time the module itself spends on a request (token, contract, store; not the next handler's), by operation.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3},
	}, []string{"operation"}),
	tokenFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "token_failures_total",
		Help: "Bearer tokens refused, by reason (missing, malformed, expired, not_yet_valid, issued_in_future, signature, unknown_key, key_type, unverifiable, missing_claim, audience, issuer, claims, no_sub, requirement, critical_header, provider, insufficient_scope, session_claim, session_ended).",
	}, []string{"reason"}),
	tokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "token_cache_lookups_total",
		Help: "Verified-token cache lookups by result: hit or miss.",
	}, []string{"result"}),
	jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "jwks_fetches_total",
		Help: "JWK Set fetches by result: ok, error or too_large.",
	}, []string{"result"}),
	responses: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "upstream_responses_total",
		Help: "Upstream answers in forward mode by what the contract check found: valid, violation, incomplete (the body broke off while held), unchecked_too_large or unchecked_encoded.",
	}, []string{"result"}),
	liveSessions: liveSessionsCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "live_sessions"),
			"Sessions held by each in-process (memory) store, expired ones included until swept.", []string{"store"}, nil),
	},
}

// liveSessionsCollector reads, when scraped, the counts of the stores that
// count their sessions (store.Counter: the memory stores).
type liveSessionsCollector struct{ desc *prometheus.Desc }

func (c liveSessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c liveSessionsCollector) Collect(ch chan<- prometheus.Metric) {
	for name, counter := range counters() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counter.Usage().Sessions), name)
	}
}

// tokenMetrics counts what the token verifier reports.
type tokenMetrics struct{}

// CacheLookup counts a verified-token cache lookup as a hit or a miss.
func (tokenMetrics) CacheLookup(hit bool) {
	if hit {
		tokenCacheHits.Inc()
	} else {
		tokenCacheMisses.Inc()
	}
}

// JWKSFetch counts a JWK Set fetch by its result: ok, error, or too_large
// (over jwks_max_bytes or jwks_max_keys).
func (tokenMetrics) JWKSFetch(result string) {
	metrics.jwksFetches.WithLabelValues(result).Inc()
}

// registerMetrics puts the collectors on registry; registering them again
// (another handler, a reload) is not an error.
func registerMetrics(registry *prometheus.Registry) error {
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.requests, metrics.duration, metrics.tokenFailures,
		metrics.tokenCache, metrics.jwksFetches, metrics.responses, metrics.liveSessions} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// statusClass is "2xx", "4xx" and so on.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[status/100-1]
}

// requestLabels are the labels of one request's counter; its operation is
// also the label of its duration.
type requestLabels struct{ operation, outcome, problem string }

// requestChildren are the counter and histogram of one requestLabels.
type requestChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// children holds the requestChildren of each label set met so far
// (requestLabels → *requestChildren), a bounded set as the labels are: a
// vector's own lookup hashes every label value byte by byte and takes a
// shared read lock, on every request. Children are never removed from the
// vectors, so one resolved stays theirs.
var children sync.Map

// childrenOf returns the children of l, resolving them the first time.
func childrenOf(l requestLabels) *requestChildren {
	if c, ok := children.Load(l); ok {
		return c.(*requestChildren)
	}
	c, _ := children.LoadOrStore(l, &requestChildren{
		requests: metrics.requests.WithLabelValues(l.operation, l.outcome, l.problem),
		duration: metrics.duration.WithLabelValues(l.operation),
	})
	return c.(*requestChildren)
}

// Children of the one-label vectors counted on every request, resolved
// once (a child, once made, shows in the exposition, at zero until used).
var (
	tokenCacheHits, tokenCacheMisses = metrics.tokenCache.WithLabelValues("hit"), metrics.tokenCache.WithLabelValues("miss")
	responsesValid                   = metrics.responses.WithLabelValues("valid")
)
