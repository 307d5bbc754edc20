# An authorization policy written for the OPA-Envoy plugin, in the style of
# OPA's Envoy tutorial: it reads the OPA-Envoy input document
# (input.attributes.request.http, input.parsed_path, input.parsed_query) and
# returns the plugin's result object. Gatehouse runs it unchanged when
# policy.entrypoints.http is set to envoy/authz/allow (see the README); the
# compatibility test and `make bench-ext-authz` (against an OPA Go peer) use it.
#
# The tutorial verifies the JWT in Rego with io.jwt.decode_verify. That
# builtin is not in OPA's WASM engine, and Gatehouse has verified the token
# before policy runs, so this policy only reads the payload's claims.
package envoy.authz

import input.attributes.request.http as http_request

default allow := {
	"allowed": false,
	"http_status": 403,
	"body": "{\"error\": \"forbidden by envoy.authz\"}",
	"headers": {"content-type": "application/json", "x-ext-auth-allow": "no"},
}

allow := {
	"allowed": true,
	"headers": {"x-ext-auth-allow": "yes", "x-ext-auth-user": claims.sub},
	"request_headers_to_remove": ["x-debug"],
	"response_headers_to_add": {"x-policy": "envoy.authz"},
	"query_parameters_to_remove": ["debug"],
} if action_allowed

action_allowed if {
	http_request.method == "GET"
	input.parsed_path[0] == "people"
}

action_allowed if {
	http_request.method == "POST"
	input.parsed_path == ["people"]
	"admin" in claims.groups
}

claims := payload if {
	[_, encoded] := split(http_request.headers.authorization, " ")
	[_, body, _] := split(encoded, ".")
	payload := json.unmarshal(base64url.decode(body))
}
