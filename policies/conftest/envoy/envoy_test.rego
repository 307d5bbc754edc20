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
	},
}

_listener(http_filters) := {
	"name": "gatehouse_http",
	"address": {"socket_address": {"address": "0.0.0.0", "port_value": 10000}},
	"filter_chains": [{"filters": [_hcm(http_filters)]}],
}

_bootstrap(listeners) := {"static_resources": {"listeners": listeners, "clusters": []}}

_good := _bootstrap([_listener([_ext_authz, _router])])

# _with_ext_authz(ops) is the good bootstrap whose ext_authz typed_config got the JSON patch ops.
_with_ext_authz(ops) := _bootstrap([_listener([json.patch(_ext_authz, ops), _router])])

# _one(denials, fragment) holds when exactly one message mentions fragment.
_one(denials, fragment) if count([msg | some msg in denials; contains(msg, fragment)]) == 1

# --- a good bootstrap -----------------------------------------------------

test_good_bootstrap_passes if {
	denials := envoy.deny with input as _good
	count(denials) == 0
}

test_finds_every_connection_manager if {
	doc := _bootstrap([_listener([_ext_authz, _router]), _listener([_router])])
	count(envoy.http_connection_managers) == 2 with input as doc
}

# --- ext_authz present ----------------------------------------------------

test_missing_ext_authz_denied if {
	doc := _bootstrap([_listener([_ext_authz, _router]), _listener([_router])])
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
	_one(denials, "listeners[0].default_filter_chain.filters[0].typed_config: http_connection_manager has no")
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

# --- filter order ---------------------------------------------------------

test_ext_authz_after_router_denied if {
	doc := _bootstrap([_listener([_router, _ext_authz])])
	denials := envoy.deny with input as doc
	denials == {sprintf(
		"%s.http_filters[1]: envoy.filters.http.ext_authz comes after envoy.filters.http.router at http_filters[0]; %s",
		[_hcm_location, "move it before the router"],
	)}
}

test_ext_authz_before_router_allowed if {
	cors := {"name": "envoy.filters.http.cors"}
	denials := envoy.deny with input as _bootstrap([_listener([cors, _ext_authz, _router])])
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
