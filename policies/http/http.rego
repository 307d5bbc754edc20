# METADATA
# title: Gatehouse HTTP policy
# description: |
#   Decides each HTTP request Envoy's ext_authz filter checks. The input is
#   the OPA-Envoy input document plus Gatehouse's common fields. GET, HEAD
#   and OPTIONS, spelled exactly so, need read access; every other method
#   needs write access.
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

decision := with_status(lib.make("http", {"access": needed, "denials": denials}))

with_status(result) := object.union(result, {"http_status": 403}) if result.action == "deny"

else := result

# METADATA
# description: Why the request needs write access; lib.decision asks only to explain a denial.
write_reason := concat("", [
	trim_space(concat(" ", [text.clip(method, 100), text.clip(path, 200)])), override_note,
	" needs write access",
])

# The method as the caller sent it. Methods are case-sensitive (RFC 9110,
# 9.1): "get" is not GET, and servers differ on it (Go's ServeMux matches
# it to no GET route, Werkzeug reads it as GET), so it is not taken for a read.
default method := ""

method := name if {
	name := input.attributes.request.http.method
	is_string(name)
}

# The path without its query string: the query may carry secrets, and
# reasons are shown to the caller and recorded.
default path := ""

path := split(full, "?")[0] if {
	full := input.attributes.request.http.path
	is_string(full)
}

default needed := "write"

needed := "read" if {
	read_method(method)
	not overridden(input.attributes.request.http.headers, method)
	not query_overridden
}

read_method("GET")

read_method("HEAD")

read_method("OPTIONS")

# Method-override headers make many frameworks treat a request as another
# method: a GET carrying one is never read access. CGI-style servers read
# X_HTTP_METHOD_OVERRIDE as X-HTTP-Method-Override, and some proxies pass
# the original method in X-Original-Method.
override_headers := [
	"x-http-method-override", "x-http-method", "x-method-override",
	"x_http_method_override", "x-original-method",
]

# The values are the caller's: clipped, as every caller-supplied text in a reason.
overrides contains concat(": ", [name, text.clip(value, 100)]) if {
	some name in override_headers
	value := input.attributes.request.http.headers[name]
	overrides_method(value, method)
}

overrides contains concat("", ["?", text.clip(key, 100), "=", text.clip(value, 100)]) if {
	some key, values in object.get(input, "parsed_query", {})
	method_param(key)
	some value in values
	overrides_method(value, method)
}

# overrides, as a yes or no: the names and values are only needed in a reason.
# One body per header is cheaper in WASM than building override_headers.
overridden(headers, method) if overrides_method(headers["x-http-method-override"], method)

overridden(headers, method) if overrides_method(headers["x-http-method"], method)

overridden(headers, method) if overrides_method(headers["x-method-override"], method)

overridden(headers, method) if overrides_method(headers.x_http_method_override, method)

overridden(headers, method) if overrides_method(headers["x-original-method"], method)

# Form-style method spoofing (Rails, Laravel): ?_method=DELETE.
query_overridden if {
	some key, values in object.get(input, "parsed_query", {})
	method_param(key)
	some value in values
	overrides_method(value, method)
}

# _method in any case, and with any bracket suffix: qs (Express) and PHP
# read _method[]=DELETE and _method[0]=DELETE as _method, a list holding DELETE.
method_param(key) if regex.match(`^(?i)_method(\[[^\]]*\])*$`, key)

overrides_method(value, method) if upper(trim_space(value)) != method

default override_note := ""

override_note := concat("", [" with ", concat(", ", sort(overrides))]) if count(overrides) > 0

denials contains "HTTP request has no method (attributes.request.http.method)" if method == ""
