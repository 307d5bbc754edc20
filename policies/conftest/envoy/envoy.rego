# conftest checks for the Envoy bootstrap that fronts Gatehouse (envoy/envoy.yaml).
#
#   conftest test --policy policies/conftest --namespace gatehouse.conftest.envoy envoy/envoy.yaml
#
# Every HTTP connection manager in the file must send each request to Gatehouse's
# ext_authz gRPC service before routing it, send each allowed response through
# Gatehouse's ext_proc service (masking, recording), fail closed, visibly, and log
# each request with the x-request-id that joins it to its audit event.
package gatehouse.conftest.envoy

_hcm_name := "envoy.filters.network.http_connection_manager"

_hcm_type := "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

_ext_authz_name := "envoy.filters.http.ext_authz"

_ext_authz_type := "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"

_ext_proc_name := "envoy.filters.http.ext_proc"

_ext_proc_type := "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"

_router_name := "envoy.filters.http.router"

_router_type := "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

# Every http_connection_manager in the document, by the location of its typed_config,
# wherever it sits (any listener, any filter chain, default_filter_chain).
http_connection_managers[location] := filter.typed_config if {
	walk(input, [path, filter])
	is_object(filter)
	_hcm_filter(filter)
	location := _location(array.concat(path, ["typed_config"]))
}

# An ext_authz http filter is present in every http_connection_manager.
# METADATA
# title: deny
# description: >-
#   conftest denials for envoy.yaml checks, one message per problem.
#   The conftest query; each message names the offending key and the fix.
# scope: document
# entrypoint: true
deny contains msg if {
	some location, hcm in http_connection_managers
	not _has_ext_authz(hcm)
	msg := sprintf(
		"%s: http_connection_manager has no %s http filter; add it before %s so Gatehouse checks every request",
		[location, _ext_authz_name, _router_name],
	)
}

# The file has at least one http_connection_manager: a bootstrap without one checks
# nothing, and passing the rules above by having nothing to check is not a pass.
deny contains msg if {
	count(http_connection_managers) == 0
	msg := sprintf(
		"no %s found; route HTTP through one with an %s http filter before the router",
		[_hcm_name, _ext_authz_name],
	)
}

# The ext_authz filter is configured with its v3 typed_config.
deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	object.get(filter, ["typed_config", "@type"], null) != _ext_authz_type
	msg := sprintf(
		"%s.http_filters[%d]: %s needs typed_config with \"@type\": %s",
		[location, i, _ext_authz_name, _ext_authz_type],
	)
}

# failure_mode_allow: false is written out, so fail-closed is visible in review.
deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	not "failure_mode_allow" in object.keys(object.get(filter, "typed_config", {}))
	msg := sprintf(
		"%s.http_filters[%d]: %s does not set failure_mode_allow; write failure_mode_allow: false explicitly",
		[location, i, _ext_authz_name],
	)
}

deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	value := filter.typed_config.failure_mode_allow
	value != false
	msg := sprintf(
		"%s.http_filters[%d]: failure_mode_allow is %s, so requests pass when Gatehouse cannot answer; set it to false",
		[location, i, json.marshal(value)],
	)
}

# ext_authz calls Gatehouse over gRPC, with a deadline.
deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	not is_object(object.get(filter, ["typed_config", "grpc_service"], null))
	msg := sprintf(
		"%s.http_filters[%d]: %s has no grpc_service; call Gatehouse over gRPC (grpc_service.envoy_grpc.cluster_name: %s)",
		[location, i, _ext_authz_name, "gatehouse_ext_authz"],
	)
}

deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	grpc_service := filter.typed_config.grpc_service
	is_object(grpc_service)
	not "timeout" in object.keys(grpc_service)
	msg := sprintf(
		"%s.http_filters[%d]: grpc_service has no timeout; set grpc_service.timeout (e.g. 0.5s)",
		[location, i],
	)
}

# Policies see the request body (parsed_body), within a limit.
deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	not is_object(object.get(filter, ["typed_config", "with_request_body"], null))
	msg := sprintf(
		"%s.http_filters[%d]: %s has no with_request_body; %s so policies see the body",
		[location, i, _ext_authz_name, "set with_request_body {max_request_bytes: 8192, allow_partial_message: true}"],
	)
}

# ext_authz runs before the router: a filter after the router never sees the request.
deny contains msg if {
	some [location, i, filter] in _ext_authz_filters
	some j, router in _http_filters(http_connection_managers[location])
	_router(router)
	j < i
	msg := sprintf(
		"%s.http_filters[%d]: %s comes after %s at http_filters[%d]; move it before the router",
		[location, i, _ext_authz_name, _router_name, j],
	)
}

# No route, virtual host or cluster turns the check, or the masking, off,
# except a route that answers itself (direct_response): nothing goes upstream.
deny contains msg if {
	walk(input, [path, per_filter])
	path[count(path) - 1] == "typed_per_filter_config"
	not _answers_itself(array.slice(path, 0, count(path) - 1))
	some name, consequence in _skipped_when_disabled
	per_filter[name].disabled == true
	msg := sprintf(
		"%s: %s is disabled here, so %s; remove disabled: true",
		[_location(array.concat(path, [name])), name, consequence],
	)
}

# An ext_proc http filter is present in every http_connection_manager.
deny contains msg if {
	some location, hcm in http_connection_managers
	not _has_ext_proc(hcm)
	msg := sprintf(
		"%s: http_connection_manager has no %s http filter; add it after %s so %s",
		[location, _ext_proc_name, _ext_authz_name, "Gatehouse masks and records responses"],
	)
}

# The ext_proc filter is configured with its v3 typed_config.
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	object.get(filter, ["typed_config", "@type"], null) != _ext_proc_type
	msg := sprintf(
		"%s.http_filters[%d]: %s needs typed_config with \"@type\": %s",
		[location, i, _ext_proc_name, _ext_proc_type],
	)
}

# ext_proc fails closed too (false is its default, so leaving it out is fine).
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	value := object.get(filter, ["typed_config", "failure_mode_allow"], false)
	value != false
	msg := sprintf(
		"%s.http_filters[%d]: %s failure_mode_allow is %s, so %s; set it to false",
		[location, i, _ext_proc_name, json.marshal(value), "responses pass unmasked when Gatehouse cannot answer"],
	)
}

# Masking needs the whole response body at once: BUFFERED (or its number, 2).
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	mode := object.get(filter, ["typed_config", "processing_mode", "response_body_mode"], "NONE")
	not mode in {"BUFFERED", 2}
	msg := sprintf(
		"%s.http_filters[%d]: %s response_body_mode is %s; %s",
		[
			location, i, _ext_proc_name, json.marshal(mode),
			"set processing_mode.response_body_mode: BUFFERED so Gatehouse can mask the body",
		],
	)
}

# Trailers can hold what headers can (an echoed credential, a value under a "$" rule); Envoy skips
# them unless told to send them (SEND, or its number, 1).
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	mode := object.get(filter, ["typed_config", "processing_mode", "response_trailer_mode"], "DEFAULT")
	not mode in {"SEND", 1}
	msg := sprintf(
		"%s.http_filters[%d]: %s response_trailer_mode is %s; %s",
		[
			location, i, _ext_proc_name, json.marshal(mode),
			"set processing_mode.response_trailer_mode: SEND so Gatehouse screens trailers as headers",
		],
	)
}

# Process learns Check's decision (mask plan, session) from the ext_authz metadata namespace.
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	namespaces := object.get(filter, ["typed_config", "metadata_options", "forwarding_namespaces", "untyped"], [])
	not _ext_authz_name in _as_array(namespaces)
	msg := sprintf(
		"%s.http_filters[%d]: %s does not forward the %s metadata namespace; %s",
		[
			location, i, _ext_proc_name, _ext_authz_name,
			"list it in metadata_options.forwarding_namespaces.untyped so Process gets Check's decision",
		],
	)
}

# ext_proc runs after ext_authz, so it only sees allowed requests and Check's metadata exists.
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	some j, authz in _http_filters(http_connection_managers[location])
	_ext_authz(authz)
	i < j
	msg := sprintf(
		"%s.http_filters[%d]: %s comes before %s at http_filters[%d]; move it after, so it only sees allowed requests",
		[location, i, _ext_proc_name, _ext_authz_name, j],
	)
}

# ... and before the router, which ends the chain.
deny contains msg if {
	some [location, i, filter] in _ext_proc_filters
	some j, router in _http_filters(http_connection_managers[location])
	_router(router)
	j < i
	msg := sprintf(
		"%s.http_filters[%d]: %s comes after %s at http_filters[%d]; move it before the router",
		[location, i, _ext_proc_name, _router_name, j],
	)
}

# Each request is logged, with the x-request-id that joins the line to its audit event.
deny contains msg if {
	some location, hcm in http_connection_managers
	count(_access_logs(hcm)) == 0
	msg := sprintf(
		"%s: http_connection_manager has no access log; add one whose format prints %s",
		[location, _request_id_operator],
	)
}

deny contains msg if {
	some location, hcm in http_connection_managers
	logs := _access_logs(hcm)
	count(logs) > 0
	every log in logs {
		not contains(upper(json.marshal(log)), _request_id_operator)
	}
	msg := sprintf(
		"%s.access_log: no access log prints %s; add it to the format so each line joins its Gatehouse audit event",
		[location, _request_id_operator],
	)
}

_request_id_operator := "%REQ(X-REQUEST-ID)%"

# What a route loses when it turns a Gatehouse filter off.
_skipped_when_disabled := {
	_ext_authz_name: "these requests skip Gatehouse",
	_ext_proc_name: "these responses are neither masked nor recorded",
}

_access_logs(hcm) := hcm.access_log if is_array(hcm.access_log)

else := []

_as_array(value) := value if is_array(value)

else := []

# [hcm location, index in http_filters, filter] for every ext_proc filter
_ext_proc_filters contains [location, i, filter] if {
	some location, hcm in http_connection_managers
	some i, filter in _http_filters(hcm)
	_ext_proc(filter)
}

_has_ext_proc(hcm) if {
	some filter in _http_filters(hcm)
	_ext_proc(filter)
}

_ext_proc(filter) if filter.name == _ext_proc_name

_ext_proc(filter) if filter.typed_config["@type"] == _ext_proc_type

# [hcm location, index in http_filters, filter] for every ext_authz filter
_ext_authz_filters contains [location, i, filter] if {
	some location, hcm in http_connection_managers
	some i, filter in _http_filters(hcm)
	_ext_authz(filter)
}

_has_ext_authz(hcm) if {
	some filter in _http_filters(hcm)
	_ext_authz(filter)
}

_http_filters(hcm) := hcm.http_filters if is_array(hcm.http_filters)

else := []

_hcm_filter(filter) if filter.name == _hcm_name

_hcm_filter(filter) if filter.typed_config["@type"] == _hcm_type

_ext_authz(filter) if filter.name == _ext_authz_name

_ext_authz(filter) if filter.typed_config["@type"] == _ext_authz_type

_router(filter) if filter.name == _router_name

_router(filter) if filter.typed_config["@type"] == _router_type

_location(path) := trim_prefix(concat("", [_segment(p) | some p in path]), ".")

_segment(p) := sprintf("[%d]", [p]) if is_number(p)

_segment(p) := concat("", [".", p]) if is_string(p)

# A route that answers the request itself sends nothing upstream.
_answers_itself(path) if {
	holder := object.get(input, path, {})
	holder.direct_response
	not holder.route
}
