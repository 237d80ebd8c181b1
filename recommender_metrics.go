package main

import "github.com/prometheus/client_golang/prometheus"

// The recommender's metrics, registered only when RECOMMENDER_URL is set:
// without it /metrics shows what it always has. They mirror Redis's: the
// calls and how each ended, and the breaker's state and changes.

// recommenderOutcomes are the label values of
// shopsession_recommender_requests_total: ok, or why the call failed.
var recommenderOutcomes = [...]string{"ok", "status", "timeout", "transport", "invalid", "canceled"}

type recommenderMetrics struct {
	calls       map[string]prometheus.Counter
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
}

// watchRecommender registers the recommender's metrics; degraded reports
// whether its breaker is not closed. shopsession_degraded stays Redis's.
func (m *metrics) watchRecommender(degraded func() bool) {
	if m == nil {
		return
	}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "recommender_requests_total",
		Help: "Calls the shop made to the recommender, by outcome: ok, status (an answer other than 200), timeout (RECOMMENDER_TIMEOUT), transport (no answer: refused, reset), invalid (a 200 the page cannot show), canceled (the visitor went away). Pages served while its breaker is open make none.",
	}, []string{"outcome"})
	rm := &recommenderMetrics{calls: map[string]prometheus.Counter{}}
	for _, outcome := range recommenderOutcomes {
		rm.calls[outcome] = calls.WithLabelValues(outcome)
	}
	rm.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "recommender_breaker_state",
		Help: "1 for the state of the circuit breaker around the recommender (closed, half-open or open), 0 for the others.",
	}, []string{"state"})
	rm.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "recommender_breaker_transitions_total",
		Help: "Changes of state of the circuit breaker around the recommender, by the state one left and the state it entered.",
	}, []string{"from", "to"})
	m.registry.MustRegister(calls, rm.state, rm.transitions, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "recommender_degraded",
		Help: "1 while the circuit breaker around the recommender is open or half-open, so that pages are served without recommendations, else 0.",
	}, func() float64 {
		if degraded() {
			return 1
		}
		return 0
	}))
	m.recommender = rm
	m.setRecommenderState("closed")
}

// recommenderCall counts one call by its outcome.
func (m *metrics) recommenderCall(outcome string) {
	if m == nil || m.recommender == nil {
		return
	}
	m.recommender.calls[outcome].Inc()
}

// recommenderBreakerChanged records a change of the recommender breaker's
// state, as gobreaker's State.String() names them.
func (m *metrics) recommenderBreakerChanged(from, to string) {
	if m == nil || m.recommender == nil {
		return
	}
	m.recommender.transitions.WithLabelValues(from, to).Inc()
	m.setRecommenderState(to)
}

func (m *metrics) setRecommenderState(current string) {
	for _, state := range breakerStates {
		v := 0.0
		if state == current {
			v = 1
		}
		m.recommender.state.WithLabelValues(state).Set(v)
	}
}
