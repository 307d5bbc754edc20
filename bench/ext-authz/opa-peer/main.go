// Command opa-envoy-peer is the peer `make bench-ext-authz` measures Gatehouse
// against: an envoy.service.auth.v3.Authorization/Check server that evaluates
// a Rego policy with OPA's Go engine (github.com/open-policy-agent/opa, the
// version pinned in go.mod) and does what opa-envoy-plugin does per Check.
//
// It stands in for opa-envoy-plugin, which cannot be installed here: the Go
// module proxy answers 403 ("This module version is not available") for
// github.com/open-policy-agent/opa-envoy-plugin at every version. The plugin
// is OPA's engine plus one small mapping (envoyauth/request.go,
// envoyauth/response.go, internal.Check); this program embeds the same engine
// and does the same mapping, written from the plugin's documented contract:
//
//  1. Input: the CheckRequest through protojson.Marshal, decoded with OPA's
//     util.UnmarshalJSON (numbers as json.Number), plus "version",
//     "parsed_path" and "parsed_query" (net/url), "parsed_body" (a JSON body
//     when content-type says so) and "truncated_body" (content-length larger
//     than the body Envoy sent); then ast.InterfaceToValue.
//  2. Evaluation: a query prepared once at start-up (rego.PrepareForEval),
//     evaluated per request with the parsed input, a read transaction on the
//     in-memory store and per-request metrics, as envoyauth.Eval does; a
//     decision id per request.
//  3. Result: a boolean, or an object with "allowed" and optionally
//     "headers", "request_headers_to_remove", "response_headers_to_add",
//     "query_parameters_to_set", "query_parameters_to_remove",
//     "http_status", "body" and "dynamic_metadata", mapped to a
//     CheckResponse (OkHttpResponse or DeniedHttpResponse). A result that
//     does not fit is a gRPC error, so Envoy fails closed.
//
// Left out, as the plugin leaves them off unless configured: decision logs,
// bundle download and status plugins, Prometheus and tracing, and gRPC
// request bodies (pack_as_bytes).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

var versionInfo = map[string]any{"ext_authz": "v3", "encoding": "protojson"}

type server struct {
	authv3.UnimplementedAuthorizationServer
	store storage.Store
	query rego.PreparedEvalQuery
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9292", "where the gRPC server listens")
	policy := flag.String("policy", "", "the .rego file to load")
	query := flag.String("query", "data.envoy.authz.allow", "the decision to evaluate (opa-envoy-plugin's `path`, as a query)")
	flag.Parse()
	if *policy == "" {
		log.Fatal("opa-envoy-peer: -policy <file.rego> is required")
	}
	source, err := os.ReadFile(*policy)
	if err != nil {
		log.Fatalf("opa-envoy-peer: %v", err)
	}

	ctx := context.Background()
	store := inmem.New()
	prepared, err := rego.New(
		rego.Query(*query),
		rego.Module(*policy, string(source)),
		rego.Store(store),
		rego.EnablePrintStatements(true),
	).PrepareForEval(ctx)
	if err != nil {
		log.Fatalf("opa-envoy-peer: preparing %s: %v", *query, err)
	}

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("opa-envoy-peer: %v", err)
	}
	grpcServer := grpc.NewServer()
	authv3.RegisterAuthorizationServer(grpcServer, &server{store: store, query: prepared})

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		stopped := make(chan struct{})
		go func() { grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			grpcServer.Stop()
		}
	}()

	log.Printf("opa-envoy-peer: serving envoy.service.auth.v3.Authorization on %s, %s from %s", listener.Addr(), *query, *policy)
	if err := grpcServer.Serve(listener); err != nil {
		log.Fatalf("opa-envoy-peer: %v", err)
	}
}

// Check answers one CheckRequest as opa-envoy-plugin does.
func (s *server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	m := metrics.New()
	m.Timer(metrics.ServerHandler).Start()
	defer m.Timer(metrics.ServerHandler).Stop()
	_ = decisionID()

	input, err := requestToInput(req)
	if err != nil {
		return nil, status.Errorf(codes.Unknown, "request to input: %v", err)
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, status.Errorf(codes.Unknown, "input to value: %v", err)
	}

	txn, err := s.store.NewTransaction(ctx, storage.TransactionParams{})
	if err != nil {
		return nil, status.Errorf(codes.Unknown, "storage transaction: %v", err)
	}
	defer s.store.Abort(ctx, txn)

	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(value), rego.EvalTransaction(txn), rego.EvalMetrics(m))
	switch {
	case err != nil:
		return nil, status.Errorf(codes.Unknown, "evaluation: %v", err)
	case len(rs) == 0:
		return nil, status.Error(codes.Unknown, "undefined decision")
	case len(rs) > 1:
		return nil, status.Error(codes.Unknown, "multiple evaluation results")
	}
	resp, err := toCheckResponse(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, status.Errorf(codes.Unknown, "policy result: %v", err)
	}
	return resp, nil
}

func decisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ── CheckRequest → input ─────────────────────────────────────────────────

func requestToInput(req *authv3.CheckRequest) (map[string]any, error) {
	bs, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	var input map[string]any
	if err := util.UnmarshalJSON(bs, &input); err != nil {
		return nil, err
	}
	input["version"] = versionInfo

	httpReq := req.GetAttributes().GetRequest().GetHttp()
	parsedPath, parsedQuery, err := parsePathAndQuery(httpReq.GetPath())
	if err != nil {
		return nil, err
	}
	input["parsed_path"] = parsedPath
	input["parsed_query"] = parsedQuery

	parsedBody, truncated, err := parseBody(httpReq.GetHeaders(), httpReq.GetBody())
	if err != nil {
		return nil, err
	}
	input["parsed_body"] = parsedBody
	input["truncated_body"] = truncated
	return input, nil
}

func parsePathAndQuery(path string) ([]any, map[string]any, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	segments := strings.Split(strings.TrimLeft(u.Path, "/"), "/")
	parsedPath := make([]any, len(segments))
	for i, s := range segments {
		parsedPath[i] = s
	}
	parsedQuery := map[string]any{}
	for key, values := range u.Query() {
		vs := make([]any, len(values))
		for i, v := range values {
			vs[i] = v
		}
		parsedQuery[key] = vs
	}
	return parsedPath, parsedQuery, nil
}

func parseBody(headers map[string]string, body string) (any, bool, error) {
	if !strings.Contains(headers["content-type"], "application/json") || body == "" {
		return nil, false, nil
	}
	if cl, ok := headers["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, false, err
		}
		if n != -1 && n > int64(len(body)) {
			return nil, true, nil
		}
	}
	var data any
	if err := util.Unmarshal([]byte(body), &data); err != nil {
		return nil, false, err
	}
	return data, false, nil
}

// ── result → CheckResponse ───────────────────────────────────────────────

func toCheckResponse(decision any) (*authv3.CheckResponse, error) {
	var object map[string]any
	var allowed bool
	switch d := decision.(type) {
	case bool:
		allowed = d
	case map[string]any:
		object = d
		v, ok := d["allowed"]
		if !ok {
			return nil, errors.New(`missing "allowed" key`)
		}
		if allowed, ok = v.(bool); !ok {
			return nil, fmt.Errorf("expected allowed to be a boolean, got %T", v)
		}
	default:
		return nil, fmt.Errorf("illegal value for policy evaluation result: %T", decision)
	}

	code := codes.PermissionDenied
	if allowed {
		code = codes.OK
	}
	resp := &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code)}}
	headers, err := headerOptions(object, "headers")
	if err != nil {
		return nil, err
	}
	if raw, ok := object["dynamic_metadata"]; ok {
		md, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected dynamic_metadata to be an object, got %T", raw)
		}
		if resp.DynamicMetadata, err = structpb.NewStruct(jsonNumbersToFloats(md).(map[string]any)); err != nil {
			return nil, err
		}
	}

	if allowed {
		toRemove, err := stringList(object, "request_headers_to_remove")
		if err != nil {
			return nil, err
		}
		toAdd, err := headerOptions(object, "response_headers_to_add")
		if err != nil {
			return nil, err
		}
		paramsToSet, err := queryParameters(object)
		if err != nil {
			return nil, err
		}
		paramsToRemove, err := stringList(object, "query_parameters_to_remove")
		if err != nil {
			return nil, err
		}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:                 headers,
			HeadersToRemove:         toRemove,
			ResponseHeadersToAdd:    toAdd,
			QueryParametersToSet:    paramsToSet,
			QueryParametersToRemove: paramsToRemove,
		}}
		return resp, nil
	}

	body := ""
	if raw, ok := object["body"]; ok {
		if body, ok = raw.(string); !ok {
			return nil, fmt.Errorf("expected body to be a string, got %T", raw)
		}
	}
	httpStatus := int64(http.StatusForbidden)
	if raw, ok := object["http_status"]; ok {
		n, ok := raw.(json.Number)
		if !ok {
			return nil, fmt.Errorf("expected http_status to be a number, got %T", raw)
		}
		if httpStatus, err = n.Int64(); err != nil {
			return nil, err
		}
		if _, known := typev3.StatusCode_name[int32(httpStatus)]; !known || http.StatusText(int(httpStatus)) == "" {
			return nil, fmt.Errorf("invalid HTTP status code %d", httpStatus)
		}
	}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Headers: headers,
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(int32(httpStatus))},
		Body:    body,
	}}
	return resp, nil
}

// headerOptions reads an object of header → string | [string], or an array of such objects.
func headerOptions(object map[string]any, field string) ([]*corev3.HeaderValueOption, error) {
	raw, ok := object[field]
	if !ok {
		return nil, nil
	}
	var out []*corev3.HeaderValueOption
	add := func(headers map[string]any) error {
		for key, value := range headers {
			switch v := value.(type) {
			case string:
				out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: v}})
			case []any:
				for _, item := range v {
					s, ok := item.(string)
					if !ok {
						return fmt.Errorf("invalid value type %T for header %q", item, key)
					}
					out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: s}})
				}
			default:
				return fmt.Errorf("invalid value type %T for header %q", value, key)
			}
		}
		return nil
	}
	switch v := raw.(type) {
	case map[string]any:
		if err := add(v); err != nil {
			return nil, err
		}
	case []any:
		for _, item := range v {
			headers, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("expected %s to hold objects, got %T", field, item)
			}
			if err := add(headers); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("expected %s to be an object, got %T", field, raw)
	}
	return out, nil
}

func stringList(object map[string]any, field string) ([]string, error) {
	raw, ok := object[field]
	if !ok {
		return nil, nil
	}
	items, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("expected %s to be an array of strings, got %T", field, raw)
	}
	out := make([]string, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("expected %s to hold strings, got %T", field, item)
		}
		out[i] = s
	}
	return out, nil
}

func queryParameters(object map[string]any) ([]*corev3.QueryParameter, error) {
	raw, ok := object["query_parameters_to_set"]
	if !ok {
		return nil, nil
	}
	params, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected query_parameters_to_set to be an object, got %T", raw)
	}
	out := make([]*corev3.QueryParameter, 0, len(params))
	for key, value := range params {
		switch v := value.(type) {
		case string:
			out = append(out, &corev3.QueryParameter{Key: key, Value: v})
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("expected query parameter %q to hold strings, got %T", key, item)
				}
				out = append(out, &corev3.QueryParameter{Key: key, Value: s})
			}
		default:
			return nil, fmt.Errorf("expected query parameter %q to be a string or an array, got %T", key, value)
		}
	}
	return out, nil
}

// jsonNumbersToFloats makes a decoded JSON value acceptable to structpb (which has no json.Number).
func jsonNumbersToFloats(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, item := range x {
			x[k] = jsonNumbersToFloats(item)
		}
		return x
	case []any:
		for i, item := range x {
			x[i] = jsonNumbersToFloats(item)
		}
		return x
	default:
		return v
	}
}
