package gatehouse.conftest.envoy_test

import data.gatehouse.conftest.envoy

_hcm_location := "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"

_ext_authz := {
	"name": "envoy.filters.http.ext_authz",
	"typed_config": {
		"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
		"transport_api_version": "V3",
		"failure_mode_allow": false,
		"grpc_service": {"envoy_grpc": {"cluster_name": "gatehouse_ext_authz"}, "timeout": "0.5s"},
		"with_request_body": {"max_request_bytes": 8192, "allow_partial_message": true},
	},
}

_ext_proc := {
	"name": "envoy.filters.http.ext_proc",
	"typed_config": {
		"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
		"grpc_service": {"envoy_grpc": {"cluster_name": "gatehouse_ext_authz"}},
		"failure_mode_allow": false,
		"message_timeout": "1s",
		"processing_mode": {
			"response_header_mode": "SEND",
			"response_body_mode": "BUFFERED",
			"response_trailer_mode": "SEND",
		},
		"metadata_options": {"forwarding_namespaces": {"untyped": ["envoy.filters.http.ext_authz"]}},
	},
}

_access_log := {
	"name": "envoy.access_loggers.stdout",
	"typed_config": {
		"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
		"log_format": {"json_format": {"request_id": "%REQ(X-REQUEST-ID)%", "status": "%RESPONSE_CODE%"}},
	},
}

_router := {
	"name": "envoy.filters.http.router",
	"typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}

_route := {"match": {"prefix": "/"}, "route": {"cluster": "upstream_api"}}

_hcm(http_filters) := {
	"name": "envoy.filters.network.http_connection_manager",
	"typed_config": {
		"@type": concat("", [
			"type.googleapis.com/",
			"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		]),
		"stat_prefix": "gatehouse_http",
		"route_config": {"virtual_hosts": [{"name": "upstream_api", "domains": ["*"], "routes": [_route]}]},
		"http_filters": http_filters,
		"access_log": [_access_log],
	},
}

_listener(http_filters) := _listener_with(_hcm(http_filters))

_listener_with(hcm) := {
	"name": "gatehouse_http",
	"address": {"socket_address": {"address": "0.0.0.0", "port_value": 10000}},
	"filter_chains": [{"filters": [hcm]}],
}

_bootstrap(listeners) := {"static_resources": {"listeners": listeners, "clusters": []}}

_good := _bootstrap([_listener([_ext_authz, _ext_proc, _router])])

# _with_ext_authz(ops) is the good bootstrap whose ext_authz typed_config got the JSON patch ops.
_with_ext_authz(ops) := _bootstrap([_listener([json.patch(_ext_authz, ops), _ext_proc, _router])])

# _with_ext_proc(ops) is the good bootstrap whose ext_proc typed_config got the JSON patch ops.
_with_ext_proc(ops) := _bootstrap([_listener([_ext_authz, json.patch(_ext_proc, ops), _router])])

# _with_hcm(ops) is the good bootstrap whose connection manager filter got the JSON patch ops.
_with_hcm(ops) := _bootstrap([_listener_with(json.patch(_hcm([_ext_authz, _ext_proc, _router]), ops))])

# _one(denials, fragment) holds when exactly one message mentions fragment.
_one(denials, fragment) if count([msg | some msg in denials; contains(msg, fragment)]) == 1

# --- a good bootstrap -----------------------------------------------------

test_good_bootstrap_passes if {
	denials := envoy.deny with input as _good
	count(denials) == 0
}

test_finds_every_connection_manager if {
	doc := _bootstrap([_listener([_ext_authz, _ext_proc, _router]), _listener([_router])])
	count(envoy.http_connection_managers) == 2 with input as doc
}

# --- ext_authz present ----------------------------------------------------

test_missing_ext_authz_denied if {
	doc := _bootstrap([_listener([_ext_authz, _ext_proc, _router]), _listener([_ext_proc, _router])])
	denials := envoy.deny with input as doc
	denials == {concat("", [
		"static_resources.listeners[1].filter_chains[0].filters[0].typed_config: ",
		"http_connection_manager has no envoy.filters.http.ext_authz http filter; ",
		"add it before envoy.filters.http.router so Gatehouse checks every request",
	])}
}

test_connection_manager_found_by_type_only if {
	hcm := json.patch(_hcm([_router]), [{"op": "replace", "path": "/name", "value": "my_hcm"}])
	doc := {"static_resources": {"listeners": [{"filter_chains": [{"filters": [hcm]}]}]}}
	denials := envoy.deny with input as doc
	_one(denials, "http_connection_manager has no envoy.filters.http.ext_authz http filter")
}

test_connection_manager_in_default_filter_chain_denied if {
	doc := {"static_resources": {"listeners": [{"default_filter_chain": {"filters": [_hcm([_router])]}}]}}
	denials := envoy.deny with input as doc
	_one(denials, concat("", [
		"listeners[0].default_filter_chain.filters[0].typed_config: ",
		"http_connection_manager has no envoy.filters.http.ext_authz",
	]))
}

test_bootstrap_without_connection_manager_denied if {
	tcp_proxy := {
		"name": "envoy.filters.network.tcp_proxy",
		"typed_config": {"stat_prefix": "tcp", "cluster": "upstream_api"},
	}
	doc := {"static_resources": {"listeners": [{"filter_chains": [{"filters": [tcp_proxy]}]}]}}
	denials := envoy.deny with input as doc
	denials == {concat("", [
		"no envoy.filters.network.http_connection_manager found; ",
		"route HTTP through one with an envoy.filters.http.ext_authz http filter before the router",
	])}
}

test_ext_authz_present_allowed if {
	denials := envoy.deny with input as _good
	every msg in denials {
		not contains(msg, "has no envoy.filters.http.ext_authz")
	}
}

# --- ext_authz typed_config -----------------------------------------------

test_ext_authz_wrong_type_denied if {
	doc := _with_ext_authz([{
		"op": "replace", "path": "/typed_config/@type",
		"value": "type.googleapis.com/envoy.config.filter.http.ext_authz.v2.ExtAuthz",
	}])
	denials := envoy.deny with input as doc
	_one(denials, sprintf("%s.http_filters[0]: envoy.filters.http.ext_authz needs typed_config with", [_hcm_location]))
}

test_ext_authz_v3_type_allowed if {
	denials := envoy.deny with input as _good
	every msg in denials {
		not contains(msg, "needs typed_config")
	}
}

# --- failure_mode_allow ---------------------------------------------------

test_failure_mode_allow_absent_denied if {
	doc := _with_ext_authz([{"op": "remove", "path": "/typed_config/failure_mode_allow"}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[0]: envoy.filters.http.ext_authz does not set failure_mode_allow; %s",
		[_hcm_location, "write failure_mode_allow: false explicitly"],
	)}
}

test_failure_mode_allow_true_denied if {
	doc := _with_ext_authz([{"op": "replace", "path": "/typed_config/failure_mode_allow", "value": true}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[0]: failure_mode_allow is true, so requests pass when Gatehouse cannot answer; set it to false",
		[_hcm_location],
	)}
}

test_failure_mode_allow_string_denied if {
	doc := _with_ext_authz([{"op": "replace", "path": "/typed_config/failure_mode_allow", "value": "false"}])
	denials := envoy.deny with input as doc
	_one(denials, "failure_mode_allow is \"false\"")
}

test_failure_mode_allow_false_allowed if {
	denials := envoy.deny with input as _good
	every msg in denials {
		not contains(msg, "failure_mode_allow")
	}
}

# --- grpc_service and timeout ---------------------------------------------

test_http_service_instead_of_grpc_denied if {
	doc := _with_ext_authz([
		{"op": "remove", "path": "/typed_config/grpc_service"},
		{"op": "add", "path": "/typed_config/http_service", "value": {"server_uri": {"uri": "127.0.0.1:9191"}}},
	])
	denials := envoy.deny with input as doc
	_one(denials, "envoy.filters.http.ext_authz has no grpc_service; call Gatehouse over gRPC")
}

test_grpc_service_without_timeout_denied if {
	doc := _with_ext_authz([{"op": "remove", "path": "/typed_config/grpc_service/timeout"}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[0]: grpc_service has no timeout; set grpc_service.timeout (e.g. 0.5s)",
		[_hcm_location],
	)}
}

test_grpc_service_with_timeout_allowed if {
	denials := envoy.deny with input as _good
	every msg in denials {
		not contains(msg, "grpc_service")
	}
}

test_with_request_body_absent_denied if {
	doc := _with_ext_authz([{"op": "remove", "path": "/typed_config/with_request_body"}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[0]: envoy.filters.http.ext_authz has no with_request_body; %s so policies see the body",
		[_hcm_location, "set with_request_body {max_request_bytes: 8192, allow_partial_message: true}"],
	)}
}

test_with_request_body_set_allowed if {
	denials := envoy.deny with input as _good
	every msg in denials {
		not contains(msg, "with_request_body")
	}
}

# --- filter order ---------------------------------------------------------

test_ext_authz_after_router_denied if {
	doc := _bootstrap([_listener([_router, _ext_authz, _ext_proc])])
	denials := envoy.deny with input as doc
	_one(denials, sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_authz comes after envoy.filters.http.router at http_filters[0]; %s",
		[_hcm_location, "move it before the router"],
	))
}

test_ext_authz_before_router_allowed if {
	cors := {"name": "envoy.filters.http.cors"}
	denials := envoy.deny with input as _bootstrap([_listener([cors, _ext_authz, _ext_proc, _router])])
	count(denials) == 0
}

# --- per-route opt-out ----------------------------------------------------

test_ext_authz_disabled_on_route_denied if {
	route := object.union(_route, {"typed_per_filter_config": {"envoy.filters.http.ext_authz": {"disabled": true}}})
	doc := json.patch(_good, [{
		"op": "add",
		"path": "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0",
		"value": route,
	}])
	denials := envoy.deny with input as doc
	_one(denials, concat("", [
		"virtual_hosts[0].routes[0].typed_per_filter_config.envoy.filters.http.ext_authz: ",
		"envoy.filters.http.ext_authz is disabled here, so these requests skip Gatehouse",
	]))
}

test_filters_disabled_on_a_route_that_answers_itself_allowed if {
	route := {
		"match": {"safe_regex": {"regex": ".*/\\.\\.;.*"}},
		"direct_response": {"status": 400},
		"typed_per_filter_config": {
			"envoy.filters.http.ext_authz": {"disabled": true},
			"envoy.filters.http.ext_proc": {"disabled": true},
		},
	}
	doc := json.patch(_good, [{
		"op": "add",
		"path": "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0",
		"value": route,
	}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}

test_ext_authz_per_route_settings_allowed if {
	per_route := {"envoy.filters.http.ext_authz": {"check_settings": {"context_extensions": {"route": "public"}}}}
	route := object.union(_route, {"typed_per_filter_config": per_route})
	doc := json.patch(_good, [{
		"op": "add",
		"path": "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0",
		"value": route,
	}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}

# --- ext_proc present ------------------------------------------------------

test_missing_ext_proc_denied if {
	doc := _bootstrap([_listener([_ext_authz, _router])])
	denials := envoy.deny with input as doc
	denials == {concat("", [
		"static_resources.listeners[0].filter_chains[0].filters[0].typed_config: ",
		"http_connection_manager has no envoy.filters.http.ext_proc http filter; ",
		"add it after envoy.filters.http.ext_authz so Gatehouse masks and records responses",
	])}
}

test_ext_proc_found_by_type_only if {
	renamed := json.patch(_ext_proc, [{"op": "replace", "path": "/name", "value": "gatehouse_ext_proc"}])
	denials := envoy.deny with input as _bootstrap([_listener([_ext_authz, renamed, _router])])
	count(denials) == 0
}

test_ext_proc_wrong_type_denied if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/@type",
		"value": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
	}])
	denials := envoy.deny with input as doc
	_one(denials, sprintf("%s.http_filters[1]: envoy.filters.http.ext_proc needs typed_config with", [_hcm_location]))
}

# --- ext_proc failure_mode_allow -------------------------------------------

test_ext_proc_failure_mode_allow_true_denied if {
	doc := _with_ext_proc([{"op": "replace", "path": "/typed_config/failure_mode_allow", "value": true}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_proc failure_mode_allow is true, %s; set it to false",
		[_hcm_location, "so responses pass unmasked when Gatehouse cannot answer"],
	)}
}

test_ext_proc_failure_mode_allow_absent_allowed if {
	doc := _with_ext_proc([{"op": "remove", "path": "/typed_config/failure_mode_allow"}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}

# --- ext_proc response body ------------------------------------------------

test_ext_proc_streamed_body_denied if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/processing_mode/response_body_mode",
		"value": "STREAMED",
	}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_proc response_body_mode is \"STREAMED\"; %s",
		[_hcm_location, "set processing_mode.response_body_mode: BUFFERED so Gatehouse can mask the body"],
	)}
}

test_ext_proc_without_processing_mode_denied if {
	doc := _with_ext_proc([{"op": "remove", "path": "/typed_config/processing_mode"}])
	denials := envoy.deny with input as doc
	_one(denials, "envoy.filters.http.ext_proc response_body_mode is \"NONE\"")
	_one(denials, "envoy.filters.http.ext_proc response_trailer_mode is \"DEFAULT\"")
}

# --- ext_proc response trailers --------------------------------------------

test_ext_proc_skipped_trailers_denied if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/processing_mode/response_trailer_mode",
		"value": "SKIP",
	}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_proc response_trailer_mode is \"SKIP\"; %s",
		[_hcm_location, "set processing_mode.response_trailer_mode: SEND so Gatehouse screens trailers as headers"],
	)}
}

test_ext_proc_trailers_sent_by_number_allowed if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/processing_mode/response_trailer_mode",
		"value": 1,
	}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}

test_ext_proc_buffered_by_number_allowed if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/processing_mode/response_body_mode",
		"value": 2,
	}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}

# --- ext_proc metadata forwarding ------------------------------------------

test_ext_proc_without_forwarding_namespace_denied if {
	doc := _with_ext_proc([{"op": "remove", "path": "/typed_config/metadata_options"}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_proc does not forward the %s metadata namespace; %s",
		[
			_hcm_location, "envoy.filters.http.ext_authz",
			"list it in metadata_options.forwarding_namespaces.untyped so Process gets Check's decision",
		],
	)}
}

test_ext_proc_forwarding_namespace_as_string_denied if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/metadata_options/forwarding_namespaces/untyped",
		"value": "envoy.filters.http.ext_authz",
	}])
	denials := envoy.deny with input as doc
	_one(denials, "does not forward the envoy.filters.http.ext_authz metadata namespace")
}

test_ext_proc_typed_namespace_only_denied if {
	doc := _with_ext_proc([{
		"op": "replace", "path": "/typed_config/metadata_options/forwarding_namespaces",
		"value": {"typed": ["envoy.filters.http.ext_authz"]},
	}])
	denials := envoy.deny with input as doc
	_one(denials, "does not forward the envoy.filters.http.ext_authz metadata namespace")
}

# --- ext_proc order --------------------------------------------------------

test_ext_proc_before_ext_authz_denied if {
	denials := envoy.deny with input as _bootstrap([_listener([_ext_proc, _ext_authz, _router])])
	denials == {sprintf(
		"%s.http_filters[0]: envoy.filters.http.ext_proc comes before envoy.filters.http.ext_authz at http_filters[1]; %s",
		[_hcm_location, "move it after, so it only sees allowed requests"],
	)}
}

test_ext_proc_after_router_denied if {
	denials := envoy.deny with input as _bootstrap([_listener([_ext_authz, _router, _ext_proc])])
	denials == {sprintf(
		"%s.http_filters[2]: envoy.filters.http.ext_proc comes after envoy.filters.http.router at http_filters[1]; %s",
		[_hcm_location, "move it before the router"],
	)}
}

test_ext_proc_disabled_on_route_denied if {
	per_route := {"envoy.filters.http.ext_proc": {"disabled": true}}
	doc := _with_hcm([{
		"op": "add", "path": "/typed_config/route_config/virtual_hosts/0/routes/0",
		"value": object.union(_route, {"typed_per_filter_config": per_route}),
	}])
	denials := envoy.deny with input as doc
	_one(denials, concat("", [
		"routes[0].typed_per_filter_config.envoy.filters.http.ext_proc: ",
		"envoy.filters.http.ext_proc is disabled here, so these responses are neither masked nor recorded",
	]))
}

# --- access log ------------------------------------------------------------

test_no_access_log_denied if {
	doc := _with_hcm([{"op": "remove", "path": "/typed_config/access_log"}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s: http_connection_manager has no access log; add one whose format prints %%REQ(X-REQUEST-ID)%%",
		[_hcm_location],
	)}
}

test_access_log_without_request_id_denied if {
	doc := _with_hcm([{
		"op": "replace", "path": "/typed_config/access_log/0/typed_config/log_format",
		"value": {"text_format_source": {"inline_string": "%START_TIME% %RESPONSE_CODE%\n"}},
	}])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.access_log: no access log prints %%REQ(X-REQUEST-ID)%%; %s",
		[_hcm_location, "add it to the format so each line joins its Gatehouse audit event"],
	)}
}

test_access_log_request_id_any_case_allowed if {
	doc := _with_hcm([{
		"op": "replace", "path": "/typed_config/access_log/0/typed_config/log_format",
		"value": {"text_format_source": {"inline_string": "%REQ(x-request-id)% %RESPONSE_CODE%\n"}},
	}])
	denials := envoy.deny with input as doc
	count(denials) == 0
}
