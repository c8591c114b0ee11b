package analyze

import (
	"errors"
	"fmt"
	"sort"

	"palisade.dev/palisade/internal/config"
)

// Level is how serious a finding is.
type Level int

// Levels, most serious first.
const (
	Error Level = iota
	Warning
	Info
)

func (l Level) String() string {
	switch l {
	case Error:
		return "Error"
	case Warning:
		return "Warning"
	default:
		return "Info"
	}
}

// MarshalText writes the level's name, for -o json.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "Error":
		*l = Error
	case "Warning":
		*l = Warning
	case "Info":
		*l = Info
	default:
		return fmt.Errorf("analyze: unknown level %q", b)
	}
	return nil
}

// Finding codes. They never change meaning; new checks get new codes.
const (
	// CodeInvalid: a resource failed decoding or validation.
	CodeInvalid = "PAL0001"
	// CodeMTLSConflict: a DestinationRule with tls mode DISABLE toward a
	// port whose workloads' effective PeerAuthentication is STRICT.
	CodeMTLSConflict = "PAL0002"
	// CodeUnknownProvider: CUSTOM AuthorizationPolicy naming an extension
	// provider the mesh config does not declare.
	CodeUnknownProvider = "PAL0003"
	// CodeSelectorNoMatch: a policy selector that matches no workload.
	CodeSelectorNoMatch = "PAL0004"
	// CodeJWTNotRequired: RequestAuthentication with no AuthorizationPolicy
	// requiring a request principal for its workloads.
	CodeJWTNotRequired = "PAL0005"
	// CodeUnknownNamespace: a policy in a namespace nothing declares.
	CodeUnknownNamespace = "PAL0006"
	// CodeLegacyKind: a pre-1.4 kind that Palisade reads but does not
	// enforce.
	CodeLegacyKind = "PAL0007"
	// CodeProxyRefuses: a policy that passes validation but that the
	// proxy's compiler (authz, jwt) refuses, so a proxy would reject the
	// whole update.
	CodeProxyRefuses = "PAL0008"
)

// Finding is one problem.
type Finding struct {
	Code      string   `json:"code"`
	Level     Level    `json:"level"`
	Message   string   `json:"message"`
	Resources []string `json:"resources,omitempty"` // "Kind ns/name"
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s [%s]", f.Level, f.Code)
	if len(f.Resources) > 0 {
		s += fmt.Sprintf(" (%s)", f.Resources[0])
	}
	return s + " " + f.Message
}

// FromError turns the errors of config.Decode, Load or LoadAll into
// findings with code PAL0001, one per problem.
func FromError(err error) []Finding {
	var out []Finding
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		f := Finding{Code: CodeInvalid, Level: Error, Message: e.Error()}
		var fe *config.FieldError
		if errors.As(e, &fe) && fe.Kind != "" && fe.Name != "" {
			f.Resources = []string{config.Key{Kind: fe.Kind, Namespace: fe.Namespace, Name: fe.Name}.String()}
		}
		out = append(out, f)
	}
	walk(err)
	return out
}

// Run runs every cross-resource check on snap and returns the findings,
// errors first, then by code and resource.
func Run(snap *config.Snapshot) []Finding {
	if snap == nil {
		return nil
	}
	a := newAnalyzer(snap)
	a.mtlsConflicts()
	a.unknownProviders()
	a.selectorsWithoutWorkloads()
	a.jwtNotRequired()
	a.unknownNamespaces()
	a.legacyKinds()
	a.proxyRefusals()
	Sort(a.findings)
	return a.findings
}

// Sort orders findings by level, code, resource and message.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Level != b.Level {
			return a.Level < b.Level
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		ra, rb := "", ""
		if len(a.Resources) > 0 {
			ra = a.Resources[0]
		}
		if len(b.Resources) > 0 {
			rb = b.Resources[0]
		}
		if ra != rb {
			return ra < rb
		}
		return a.Message < b.Message
	})
}

// Count returns how many findings have each level.
func Count(fs []Finding) (errs, warnings, infos int) {
	for _, f := range fs {
		switch f.Level {
		case Error:
			errs++
		case Warning:
			warnings++
		default:
			infos++
		}
	}
	return
}
