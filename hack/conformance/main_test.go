package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// want maps an object name to "" (must pass) or a substring of its failure.
type want map[string]string

func TestTestdata(t *testing.T) {
	cases := map[string]want{
		"ksvc-valid.yaml": {
			"sklearn-iris-predictor-default": "",
			"x":                              "",
		},
		"ksvc-invalid.yaml": {
			"bad-traffic":       "Traffic targets sum to 90, want 100",
			"bad-concurrency":   "spec.template.spec.containerConcurrency",
			"bad-template-name": `must have prefix "bad-template-name-"`,
			"bad-scale":         "max-scale=2 is less than min-scale=5",
			"bad-tags":          `Multiple definitions for "t"`,
			"bad-field":         `unknown field "spec.template.spec.containers[0].imagePullPolice"`,
			"bad-owner":         "uid must not be empty",
		},
		"vs-valid.yaml": {
			"sklearn-iris":        "",
			"sklearn-iris-canary": "",
		},
		"vs-invalid.yaml": {
			"bad-unknown-field": "spec.http[0].rewrit: unknown field",
			"bad-snake-case":    `spec.http[0].retries.per_try_timeout: field must be spelled "perTryTimeout"`,
			"bad-destination":   "spec.http[0].route[0].destination.host: Required value",
			"bad-weight":        "invalid value for int32 field weight",
			"bad-oneof":         "oneof istio.networking.v1alpha3.StringMatch.match_type is already set",
			"bad-timeout":       "must be a valid duration greater than 1ms",
			"":                  "metadata.name: Required value",
		},
		"services.yaml": {
			"sklearn-iris": "",
			"not-checked":  "", // ConfigMap: skipped
		},
		"service-invalid.yaml": {
			"bad-external-name": "spec.externalName: Required value",
		},
	}
	for file, expected := range cases {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			results, err := CheckStream(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != len(expected) {
				t.Errorf("got %d results, want %d", len(results), len(expected))
			}
			for _, r := range results {
				sub, ok := expected[r.Name]
				if !ok {
					t.Errorf("unexpected object %q", r.Name)
					continue
				}
				switch {
				case sub == "" && r.Err != nil:
					t.Errorf("%s: want ok, got %v", r.Name, r.Err)
				case sub != "" && r.Err == nil:
					t.Errorf("%s: want failure containing %q, got ok", r.Name, sub)
				case sub != "" && !strings.Contains(oneLine(r.Err.Error()), sub):
					t.Errorf("%s: want failure containing %q, got %q", r.Name, sub, r.Err)
				}
			}
		})
	}
}

func runString(t *testing.T, input string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut, strings.NewReader(input))
	return code, out.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestRunSummaryAndExitCode(t *testing.T) {
	code, out := runString(t, "", "testdata/ksvc-valid.yaml", "testdata/vs-valid.yaml", "testdata/services.yaml")
	if code != 0 {
		t.Errorf("exit %d, want 0\n%s", code, out)
	}
	if got, want := lastLine(out), "conformance: checked 5 objects (2 knative services, 2 virtualservices, 1 services), 0 failed"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if !strings.Contains(out, "ok Service.serving.knative.dev models/x\n") {
		t.Errorf("missing ok line:\n%s", out)
	}

	code, out = runString(t, "", "testdata/ksvc-valid.yaml", "testdata/ksvc-invalid.yaml", "testdata/vs-invalid.yaml")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if got, want := lastLine(out), "conformance: checked 16 objects (9 knative services, 7 virtualservices, 0 services), 14 failed"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if !strings.Contains(out, "FAIL Service.serving.knative.dev models/bad-traffic: ") {
		t.Errorf("missing FAIL line:\n%s", out)
	}
}

func TestStdin(t *testing.T) {
	valid, err := os.ReadFile("testdata/vs-valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"-"}} {
		if code, out := runString(t, string(valid), args...); code != 0 || !strings.Contains(out, "checked 2 objects") {
			t.Errorf("args %v: exit %d\n%s", args, code, out)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	ksvc := func(apiVersion string) string {
		return "apiVersion: " + apiVersion + `
kind: Service
metadata: {name: a, namespace: ns}
spec:
  template:
    spec:
      containers: [{image: img}]
`
	}
	cases := []struct {
		name, input string
		code        int
		summary     string // substring of the last line
		line        string // substring of the output
	}{
		{"empty input", "", 0, "checked 0 objects", ""},
		{"only comments and separators", "# nothing\n---\n---\n", 0, "checked 0 objects", ""},
		{"only skipped kinds", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", 1, "checked 0 objects", ""},
		{"valid ksvc", ksvc("serving.knative.dev/v1"), 0, "checked 1 objects (1 knative services", "ok Service.serving.knative.dev ns/a"},
		{"old knative version", ksvc("serving.knative.dev/v1alpha1"), 1, "1 failed", "is not served"},
		{"invalid yaml", "a: [\n", 1, "1 failed", "FAIL <unparseable>"},
		{"duplicate key", ksvc("serving.knative.dev/v1") + "kind: Service\n", 1, "1 failed", "already set in map"},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", 1, "1 failed", "apiVersion and kind are required"},
		{"keys are case-sensitive", strings.Replace(ksvc("serving.knative.dev/v1"), "spec:\n  template", "Spec:\n  template", 1), 1, "1 failed", `unknown field "Spec"`},
		{"unknown top-level VS field", "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: v}\nspec: {hosts: [a]}\nspek: {}\n", 1, "1 failed", `unknown field "spek"`},
		{"VS without spec", "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: v}\n", 1, "1 failed", "spec: Required value"},
		{"bad label on VS", "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: v, labels: {'a b': c}}\nspec: {hosts: [a]}\n", 1, "1 failed", "metadata.labels"},
		{"autoscaling annotation on the ksvc itself", strings.Replace(ksvc("serving.knative.dev/v1"), "namespace: ns}", "namespace: ns, annotations: {autoscaling.knative.dev/min-scale: '1'}}", 1), 1, "1 failed", "autoscaling.knative.dev/min-scale"},
		{"List is expanded", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n  spec: {ports: [{port: 80}]}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: t}\n  spec: {}\n", 1, "checked 2 objects (0 knative services, 0 virtualservices, 2 services), 1 failed", "spec.ports: Required value"},
		{"headless service needs no ports", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: None}\n", 0, "0 failed", "ok Service <none>/s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runString(t, tc.input)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			if !strings.Contains(lastLine(out), tc.summary) {
				t.Errorf("summary %q does not contain %q", lastLine(out), tc.summary)
			}
			if !strings.Contains(out, tc.line) {
				t.Errorf("output does not contain %q:\n%s", tc.line, out)
			}
		})
	}
}

// YAML 1.1 reads an unquoted n/y/no/yes/off/on as a boolean; the API server
// would reject such a namespace, and so must we (with the object named).
func TestYAMLBooleanNamespace(t *testing.T) {
	code, out := runString(t, "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: v, namespace: n}\nspec: {hosts: [a]}\n")
	if code != 1 || !strings.Contains(out, "FAIL VirtualService.networking.istio.io <none>/v: ") || !strings.Contains(out, "metadata.namespace") {
		t.Errorf("exit %d\n%s", code, out)
	}
}
