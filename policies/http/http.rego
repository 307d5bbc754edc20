# METADATA
# title: Gatehouse HTTP policy
# description: |
#   Decides each HTTP request Envoy's ext_authz filter checks. The input is
#   the OPA-Envoy input document plus Gatehouse's common fields. GET, HEAD
#   and OPTIONS need read access; every other method needs write access.
#   A deny carries http_status 403, as the OPA-Envoy plugin expects.
package gatehouse.http

import data.gatehouse.lib.decision as lib
import data.gatehouse.lib.text

# METADATA
# description: The decision for an Envoy CheckRequest; engine/policy/decision.ts checks its shape.
# scope: document
# entrypoint: true
default decision := {
	"action": "deny",
	"reasons": ["http policy reached no decision"],
	"mask": [],
	"http_status": 403,
}

decision := with_status(lib.make("http", request))

with_status(result) := object.union(result, {"http_status": 403}) if result.action == "deny"

else := result

request := {
	"access": needed,
	"write_reason": concat("", [
		trim_space(concat(" ", [method, text.clip(path, 200)])), override_note,
		" needs write access",
	]),
	"denials": denials,
}

read_methods := {"GET", "HEAD", "OPTIONS"}

default method := ""

method := upper(input.attributes.request.http.method) if is_string(input.attributes.request.http.method)

# The path without its query string: the query may carry secrets, and
# reasons are shown to the caller and recorded.
default path := ""

path := split(input.attributes.request.http.path, "?")[0] if is_string(input.attributes.request.http.path)

default needed := "write"

needed := "read" if {
	method in read_methods
	count(overrides) == 0
}

# Method-override headers make many frameworks treat a request as another
# method: a GET carrying one is never read access.
override_headers := ["x-http-method-override", "x-http-method", "x-method-override"]

overrides contains concat(": ", [name, value]) if {
	some name in override_headers
	value := input.attributes.request.http.headers[name]
	upper(trim_space(value)) != method
}

default override_note := ""

override_note := concat("", [" with ", concat(", ", sort(overrides))]) if count(overrides) > 0

denials contains "HTTP request has no method (attributes.request.http.method)" if method == ""
