// Command conformance checks Kubernetes objects rendered by the kfserving
// operator against the upstream API code of the projects that own them:
//
//   - serving.knative.dev/v1 Service: strict decode into knative.dev/serving's
//     v1.Service, then SetDefaults and Validate as the Knative webhook does
//     on create.
//   - networking.istio.io VirtualService (v1alpha3, v1beta1, v1): strict
//     protojson decode of spec into istio.io/api's VirtualService, plus the
//     checks the Istio CRD schema adds on top of the proto (required fields,
//     camelCase field names, durations of at least 1ms).
//   - v1 Service: strict decode into k8s.io/api's core/v1 Service and a few
//     cheap checks the API server would make.
//
// Every object also gets the API server's generic metadata validation
// (name, labels, annotations, ownerReferences, ...). Other kinds are skipped.
//
// Usage: conformance [FILE ...]   (no FILE or "-" reads standard input)
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	istionet "istio.io/api/networking/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"knative.dev/pkg/apis"
	"knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Category says which counter of the summary an object belongs to.
type Category int

const (
	// Unclassified: a document that could not be identified (bad YAML, no
	// apiVersion/kind). Always a failure; counted as checked.
	Unclassified Category = iota
	KnativeService
	VirtualService
	CoreService
	// Skipped: a kind this tool does not check. Not counted as checked.
	Skipped
)

// Result is the outcome for one object.
type Result struct {
	Kind      string // kind, qualified with its group for non-core kinds
	Namespace string
	Name      string
	Category  Category
	Err       error    // nil when the object conforms (or was skipped)
	Warnings  []string // non-blocking diagnostics (Knative warning-level FieldErrors)
}

func (r Result) ref() string {
	ns, name := r.Namespace, r.Name
	if ns == "" {
		ns = "<none>"
	}
	if name == "" {
		name = "<none>"
	}
	return ns + "/" + name
}

// Line renders the result the way the CLI prints it.
func (r Result) Line() string {
	switch {
	case r.Category == Skipped:
		return fmt.Sprintf("skip %s %s: kind not checked", r.Kind, r.ref())
	case r.Err != nil:
		return fmt.Sprintf("FAIL %s %s: %s", r.Kind, r.ref(), oneLine(r.Err.Error()))
	default:
		return fmt.Sprintf("ok %s %s", r.Kind, r.ref())
	}
}

func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// Summary aggregates results.
type Summary struct {
	Knative, VirtualServices, Services, Unclassified, Skipped, Failed int
}

// Checked is the number of objects that were checked (skipped ones excluded).
func (s Summary) Checked() int {
	return s.Knative + s.VirtualServices + s.Services + s.Unclassified
}

// Add counts one result.
func (s *Summary) Add(r Result) {
	switch r.Category {
	case KnativeService:
		s.Knative++
	case VirtualService:
		s.VirtualServices++
	case CoreService:
		s.Services++
	case Unclassified:
		s.Unclassified++
	case Skipped:
		s.Skipped++
		return
	}
	if r.Err != nil {
		s.Failed++
	}
}

func (s Summary) String() string {
	return fmt.Sprintf("conformance: checked %d objects (%d knative services, %d virtualservices, %d services), %d failed",
		s.Checked(), s.Knative, s.VirtualServices, s.Services, s.Failed)
}

// CheckStream checks every document of a multi-document YAML stream. The
// error is only for failures to read the stream; problems with individual
// documents are reported as failed results.
func CheckStream(r io.Reader) ([]Result, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var results []Result
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return results, nil
		}
		if err != nil {
			return results, err
		}
		results = append(results, CheckDocument(doc)...)
	}
}

// CheckDocument checks one YAML (or JSON) document. Empty documents yield no
// result; a List yields one result per item.
func CheckDocument(doc []byte) []Result {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil
	}
	// Strict: duplicate keys in a mapping are an error, as in kubectl.
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []Result{{Kind: "<unparseable>", Err: fmt.Errorf("invalid YAML: %w", err)}}
	}
	if string(bytes.TrimSpace(j)) == "null" { // only comments
		return nil
	}
	return checkObject(j)
}

// header holds the identifying fields of an object. It is read leniently
// (a wrongly typed field just reads as empty) so that type errors are reported
// by the strict, kind-specific decoding with the object's kind and name.
type header struct {
	APIVersion, Kind, Name, Namespace string
	Items                             []any
}

func readHeader(j []byte) (header, error) {
	var obj map[string]any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &obj); err != nil {
		return header{}, err
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	meta, _ := obj["metadata"].(map[string]any)
	items, _ := obj["items"].([]any)
	return header{
		APIVersion: str(obj, "apiVersion"), Kind: str(obj, "kind"),
		Name: str(meta, "name"), Namespace: str(meta, "namespace"),
		Items: items,
	}, nil
}

func checkObject(j []byte) []Result {
	h, err := readHeader(j)
	if err != nil {
		return []Result{{Kind: "<unknown>", Err: fmt.Errorf("not a Kubernetes object: %w", err)}}
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	res := Result{Kind: h.Kind, Namespace: h.Namespace, Name: h.Name}
	switch {
	case h.APIVersion == "" || h.Kind == "":
		res.Kind = "<unknown>"
		res.Err = errors.New("apiVersion and kind are required")
		return []Result{res}
	case err != nil:
		res.Err = fmt.Errorf("apiVersion: %w", err)
		return []Result{res}
	}
	if gv.Group != "" {
		res.Kind = h.Kind + "." + gv.Group
	}

	switch {
	case gv.Group == "" && gv.Version == "v1" && h.Kind == "List":
		var out []Result
		for _, item := range h.Items {
			ij, err := json.Marshal(item)
			if err != nil {
				out = append(out, Result{Kind: "<unknown>", Err: err})
				continue
			}
			out = append(out, checkObject(ij)...)
		}
		return out

	case gv.Group == "serving.knative.dev" && h.Kind == "Service":
		res.Category = KnativeService
		if gv.Version != "v1" {
			res.Err = fmt.Errorf("apiVersion %s is not served by current Knative; use serving.knative.dev/v1", h.APIVersion)
		} else {
			res.Err, res.Warnings = checkKnativeService(j)
		}

	case gv.Group == "networking.istio.io" && h.Kind == "VirtualService":
		res.Category = VirtualService
		switch gv.Version {
		case "v1alpha3", "v1beta1", "v1":
			res.Err = checkVirtualService(j)
		default:
			res.Err = fmt.Errorf("apiVersion %s is not a VirtualService version (v1alpha3, v1beta1, v1)", h.APIVersion)
		}

	case gv.Group == "" && gv.Version == "v1" && h.Kind == "Service":
		res.Category = CoreService
		res.Err = checkCoreService(j)

	default:
		res.Category = Skipped
	}
	return []Result{res}
}

// strictUnmarshal decodes JSON the way the API server does for a create with
// strict field validation: case-sensitive keys, unknown or duplicate fields
// are errors (reported with their path).
func strictUnmarshal(j []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// validateMeta applies the API server's generic ObjectMeta validation
// (name format, labels, annotations, ownerReferences, finalizers). Rendered
// manifests may leave the namespace to `kubectl apply -n`, so an empty
// namespace is not an error here.
func validateMeta(meta *metav1.ObjectMeta, nameFn apimachineryvalidation.ValidateNameFunc) field.ErrorList {
	m := meta.DeepCopy()
	if m.Namespace == "" {
		m.Namespace = "default"
	}
	var errs field.ErrorList
	if meta.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "rendered objects must be named"))
		if m.GenerateName == "" {
			m.Name = "placeholder" // avoid a duplicate "name or generateName" error
		}
	}
	return append(errs, apimachineryvalidation.ValidateObjectMeta(m, true, nameFn, field.NewPath("metadata"))...)
}

func knativeContext() context.Context {
	ctx := context.Background()
	// No config-defaults/config-features/config-autoscaler ConfigMaps: use
	// the compiled-in defaults, as a fresh Knative install does.
	ctx = config.ToContext(ctx, config.FromContextOrDefaults(ctx))
	return apis.WithinCreate(ctx)
}

// checkKnativeService mirrors the Knative webhook on create: defaulting, then
// validation. Like the webhook, only error-level FieldErrors reject the
// object; warning-level ones (e.g. "Kubernetes default value is insecure")
// are returned as warnings.
func checkKnativeService(j []byte) (error, []string) {
	var svc servingv1.Service
	if err := strictUnmarshal(j, &svc); err != nil {
		return err, nil
	}
	if errs := validateMeta(&svc.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain); len(errs) > 0 {
		return errs.ToAggregate(), nil
	}
	ctx := knativeContext()
	svc.SetDefaults(ctx)
	fe := svc.Validate(ctx)
	var warnings []string
	if w := fe.Filter(apis.WarningLevel); w != nil {
		warnings = append(warnings, oneLine(w.Error()))
	}
	if e := fe.Filter(apis.ErrorLevel); e != nil {
		return e, warnings
	}
	return nil, warnings
}

// vsObject is the envelope of a VirtualService: a strict decode of it rejects
// unknown top-level fields and malformed metadata; spec is checked separately.
type vsObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              json.RawMessage `json:"spec,omitempty"`
	Status            json.RawMessage `json:"status,omitempty"`
}

func checkVirtualService(j []byte) error {
	var obj vsObject
	if err := strictUnmarshal(j, &obj); err != nil {
		return err
	}
	var errs []string
	for _, e := range validateMeta(&obj.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain) {
		errs = append(errs, e.Error())
	}
	if len(bytes.TrimSpace(obj.Spec)) == 0 || string(bytes.TrimSpace(obj.Spec)) == "null" {
		errs = append(errs, "spec: Required value")
		return errors.New(strings.Join(errs, "; "))
	}
	var vs istionet.VirtualService
	for _, e := range checkProtoJSON(obj.Spec, vs.ProtoReflect().Descriptor(), "spec") {
		errs = append(errs, e.Error())
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	// The authoritative decode: types, enum values, oneofs, integer ranges.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(obj.Spec, &vs); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

// checkProtoJSON walks the JSON form of a proto message and reports, with
// field paths, what the Istio CRD schema rejects beyond protojson:
//   - unknown fields (protojson reports them too, but without a path);
//   - fields spelled with their proto name (host_name) instead of the JSON
//     name (hostName): protojson accepts both, the CRD schema only the latter;
//   - fields marked (google.api.field_behavior) = REQUIRED that are absent;
//   - google.protobuf.Duration values below 1ms (CRD CEL rule).
//
// Type errors are left to protojson.
func checkProtoJSON(data []byte, md protoreflect.MessageDescriptor, path string) []error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	var errs []error
	walkMessage(v, md, path, &errs)
	return errs
}

func walkMessage(v any, md protoreflect.MessageDescriptor, path string, errs *[]error) {
	if md.FullName().Parent() == "google.protobuf" {
		return // well-known types have their own JSON forms
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return // null or a type error protojson will report
	}
	fields := md.Fields()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := path + "." + k
		fd := fields.ByJSONName(k)
		if fd == nil {
			if alt := fields.ByName(protoreflect.Name(k)); alt != nil {
				*errs = append(*errs, fmt.Errorf("%s: field must be spelled %q", p, alt.JSONName()))
			} else {
				*errs = append(*errs, fmt.Errorf("%s: unknown field", p))
			}
			continue
		}
		walkField(obj[k], fd, p, errs)
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !isRequired(fd) {
			continue
		}
		if val, ok := obj[fd.JSONName()]; !ok || val == nil {
			*errs = append(*errs, fmt.Errorf("%s.%s: Required value", path, fd.JSONName()))
		}
	}
}

func walkField(v any, fd protoreflect.FieldDescriptor, path string, errs *[]error) {
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok || fd.MapValue().Kind() != protoreflect.MessageKind {
			return
		}
		for k, item := range m {
			walkValue(item, fd.MapValue().Message(), fmt.Sprintf("%s[%s]", path, k), errs)
		}
	case fd.IsList():
		l, ok := v.([]any)
		if !ok || fd.Kind() != protoreflect.MessageKind {
			return
		}
		for i, item := range l {
			walkValue(item, fd.Message(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case fd.Kind() == protoreflect.MessageKind:
		walkValue(v, fd.Message(), path, errs)
	}
}

func walkValue(v any, md protoreflect.MessageDescriptor, path string, errs *[]error) {
	if md.FullName() == "google.protobuf.Duration" {
		if s, ok := v.(string); ok {
			var d durationpb.Duration
			q, _ := json.Marshal(s)
			if protojson.Unmarshal(q, &d) == nil && d.AsDuration() < time.Millisecond {
				*errs = append(*errs, fmt.Errorf("%s: Invalid value: %q: must be a valid duration greater than 1ms", path, s))
			}
		}
		return
	}
	walkMessage(v, md, path, errs)
}

func isRequired(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	fb, _ := proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	for _, b := range fb {
		if b == annotations.FieldBehavior_REQUIRED {
			return true
		}
	}
	return false
}

func checkCoreService(j []byte) error {
	var svc corev1.Service
	if err := strictUnmarshal(j, &svc); err != nil {
		return err
	}
	errs := validateMeta(&svc.ObjectMeta, apimachineryvalidation.NameIsDNS1035Label)
	spec := field.NewPath("spec")
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		name := strings.TrimSuffix(svc.Spec.ExternalName, ".")
		if name == "" {
			errs = append(errs, field.Required(spec.Child("externalName"), "required for type ExternalName"))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(spec.Child("externalName"), svc.Spec.ExternalName, msg))
			}
		}
		if svc.Spec.ClusterIP != "" || len(svc.Spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(spec.Child("clusterIP"), "may not be set for ExternalName services"))
		}
	} else if len(svc.Spec.Ports) == 0 && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		errs = append(errs, field.Required(spec.Child("ports"), ""))
	}
	seen := map[string]bool{}
	for i, p := range svc.Spec.Ports {
		pp := spec.Child("ports").Index(i)
		if len(svc.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), "required when a service has more than one port"))
		}
		if p.Name != "" {
			if seen[p.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			seen[p.Name] = true
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		switch p.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, []string{"TCP", "UDP", "SCTP"}))
		}
	}
	if len(errs) > 0 {
		return errs.ToAggregate()
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer, stdin io.Reader) int {
	if len(args) == 0 {
		args = []string{"-"}
	}
	var sum Summary
	nonEmpty := false
	for _, name := range args {
		var r io.Reader = stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "conformance: %v\n", err)
				return 2
			}
			defer f.Close()
			r = f
		}
		results, err := CheckStream(r)
		for _, res := range results {
			nonEmpty = true
			sum.Add(res)
			if res.Category == Skipped {
				fmt.Fprintln(stderr, "note: "+res.Line())
			} else {
				fmt.Fprintln(stdout, res.Line())
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(stderr, "warning: %s %s: %s\n", res.Kind, res.ref(), w)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "conformance: reading %s: %v\n", name, err)
			return 2
		}
	}
	fmt.Fprintln(stdout, sum.String())
	if sum.Failed > 0 || (nonEmpty && sum.Checked() == 0) {
		return 1
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Stdin))
}
