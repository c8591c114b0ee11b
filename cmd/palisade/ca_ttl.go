package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"palisade.dev/palisade/internal/ca"
)

// Workload certificate lifetimes, named as istiod names them: the flag
// wins, else istiod's environment variable, else Istio's default.
const (
	flagMaxWorkloadTTL     = "max-workload-cert-ttl"
	flagDefaultWorkloadTTL = "default-workload-cert-ttl"
	envMaxWorkloadTTL      = "MAX_WORKLOAD_CERT_TTL"
	envDefaultWorkloadTTL  = "DEFAULT_WORKLOAD_CERT_TTL"
)

// workloadTTLFlags are the control plane's --max-workload-cert-ttl and
// --default-workload-cert-ttl.
type workloadTTLFlags struct {
	max, def time.Duration
}

func addWorkloadTTLFlags(fs *flag.FlagSet) *workloadTTLFlags {
	w := &workloadTTLFlags{}
	fs.DurationVar(&w.max, flagMaxWorkloadTTL, 0, fmt.Sprintf("longest workload certificate lifetime a proxy may ask for; a longer request is refused, as istiod refuses it (env %s; default %s)", envMaxWorkloadTTL, ca.DefaultMaxWorkloadTTL))
	fs.DurationVar(&w.def, flagDefaultWorkloadTTL, 0, fmt.Sprintf("workload certificate lifetime when a proxy asks for none (env %s; default %s)", envDefaultWorkloadTTL, ca.DefaultWorkloadTTL))
	return w
}

// resolve applies the environment to the flags not given on fs, after
// fs.Parse, and checks the pair. Zero means the CA's default.
func (w *workloadTTLFlags) resolve(fs *flag.FlagSet, getenv func(string) string) (maxTTL, defTTL time.Duration, err error) {
	maxTTL, errMax := durationFlagOrEnv(fs, flagMaxWorkloadTTL, w.max, envMaxWorkloadTTL, getenv)
	defTTL, errDef := durationFlagOrEnv(fs, flagDefaultWorkloadTTL, w.def, envDefaultWorkloadTTL, getenv)
	if err := errors.Join(errMax, errDef); err != nil {
		return 0, 0, err
	}
	effMax, effDef := orDefault(maxTTL, ca.DefaultMaxWorkloadTTL), orDefault(defTTL, ca.DefaultWorkloadTTL)
	if effDef > effMax {
		return 0, 0, fmt.Errorf("the default workload certificate TTL %s exceeds the max %s: set --%s (or %s) too", effDef, effMax, flagDefaultWorkloadTTL, envDefaultWorkloadTTL)
	}
	return maxTTL, defTTL, nil
}

// durationFlagOrEnv is flag name's value v if it was given on fs, else
// environment variable env's, else 0. A given value must be positive.
func durationFlagOrEnv(fs *flag.FlagSet, name string, v time.Duration, env string, getenv func(string) string) (time.Duration, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	src := "--" + name
	if !given {
		s := getenv(env)
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: %w", env, s, err)
		}
		v, src = d, env
	}
	if v <= 0 {
		return 0, fmt.Errorf("%s %s: must be positive", src, v)
	}
	return v, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
