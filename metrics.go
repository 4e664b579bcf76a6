package ownidsessions

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's collectors. They are made once per process and
// registered on each config's registry (Caddy's own pattern), so counts
// survive reloads.
var metrics = struct {
	responses *prometheus.CounterVec
}{
	responses: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "ownid_sessions",
		Name:      "upstream_responses_total",
		Help:      "Upstream answers in forward mode by what the contract check found: valid, violation, unchecked_too_large or unchecked_encoded.",
	}, []string{"result"}),
}

// registerMetrics puts the collectors on registry; registering them again
// (another handler, a reload) is not an error.
func registerMetrics(registry *prometheus.Registry) error {
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.responses} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
