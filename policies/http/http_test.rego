package gatehouse.http_test

import data.gatehouse.http as policy

identity(sub, groups) := {
	"sub": sub, "iss": "https://idp.example.com", "groups": groups,
	"agent": true, "act": {"sub": "carol@example.com"}, "claims": {},
}

support := identity("agent:support-bot", ["support-agents"])

sre := identity("agent:sre-copilot", ["sre-agents"])

crm_api := {"name": "crm-api", "kind": "http", "labels": {"env": "prod"}}

# An OPA-Envoy input document plus Gatehouse's common fields.
request(who, target, method, path) := {
	"attributes": {
		"source": {"address": {"socketAddress": {"address": "10.0.4.17", "portValue": 51234}}},
		"request": {"http": {
			"id": "4711", "method": method, "path": path, "host": "crm.internal",
			"scheme": "https", "protocol": "HTTP/1.1",
			"headers": {":method": method, ":path": path, "content-type": "application/json"},
			"body": "",
		}},
	},
	"parsed_path": ["api", "customers"],
	"parsed_query": {},
	"parsed_body": null,
	"identity": who,
	"target": target,
	"session": {"id": "sess-2"},
	"now_ns": 1767225600000000000,
	"approval": null,
}

crm_masks := [
	{"field": "$..email", "strategy": "partial"},
	{"field": "$..phone", "strategy": "hash"},
	{"field": "$..notes", "strategy": "redact", "detectors": ["email", "payment_card"]},
]

api_approval := {"groups": ["sre-leads"], "min": 1, "ttl_seconds": 900, "mode": "ticket"}

test_support_get_is_allowed_with_field_masks if {
	policy.decision == {
		"action": "allow",
		"reasons": ["allowed by grant support-read-crm: read access to crm-api"],
		"mask": crm_masks,
	} with input as request(support, crm_api, "GET", "/api/customers?limit=10")
}

test_head_and_options_are_read if {
	every method in ["HEAD", "OPTIONS"] {
		d := policy.decision with input as request(support, crm_api, method, "/api/customers")
		d.action == "allow"
	}
}

# Methods are case-sensitive (RFC 9110): only GET, HEAD and OPTIONS spelled so are reads.
test_a_read_method_in_another_case_is_a_write if {
	every method in ["get", "Get", "gET", "head", "Options"] {
		d := policy.decision with input as request(support, crm_api, method, "/api/customers")
		d.reasons == [concat("", [
			"group support-agents has read-only access to crm-api; ",
			method, " /api/customers needs write access",
		])]
	}
}

test_support_post_is_denied_with_403 if {
	policy.decision == {
		"action": "deny",
		"reasons": ["group support-agents has read-only access to crm-api; POST /api/customers needs write access"],
		"mask": [],
		"http_status": 403,
	} with input as request(support, crm_api, "POST", "/api/customers")
}

test_every_other_method_is_a_write if {
	every method in ["PUT", "PATCH", "DELETE", "CONNECT", "TRACE", "PROPFIND", "delete"] {
		d := policy.decision with input as request(support, crm_api, method, "/api/customers/42")
		d.action == "deny"
	}
}

test_method_override_headers_make_a_write if {
	base := request(support, crm_api, "GET", "/api/customers/42")
	d := policy.decision with input as object.union(base, {"attributes": {"request": {"http": {"headers": {
		"x-http-method-override": "DELETE",
	}}}}})
	d.reasons == [concat("", [
		"group support-agents has read-only access to crm-api; ",
		"GET /api/customers/42 with x-http-method-override: DELETE needs write access",
	])]
}

test_other_override_spellings_make_a_write if {
	base := request(support, crm_api, "GET", "/api/customers/42")
	every name in ["x_http_method_override", "x-original-method"] {
		headers := {"attributes": {"request": {"http": {"headers": {name: "DELETE"}}}}}
		d := policy.decision with input as object.union(base, headers)
		d.reasons == [concat("", [
			"group support-agents has read-only access to crm-api; ",
			"GET /api/customers/42 with ", name, ": DELETE needs write access",
		])]
	}
}

test_method_spoofed_in_the_query_makes_a_write if {
	spoofed := object.union(
		request(support, crm_api, "GET", "/api/customers/42?_method=DELETE"),
		{"parsed_query": {"_method": ["DELETE"]}},
	)
	d := policy.decision with input as spoofed
	d.reasons == [concat("", [
		"group support-agents has read-only access to crm-api; ",
		"GET /api/customers/42 with ?_method=DELETE needs write access",
	])]
	same := object.union(
		request(support, crm_api, "GET", "/api/customers/42?_method=get"),
		{"parsed_query": {"_method": ["get"]}},
	)
	policy.decision.action == "allow" with input as same
}

test_method_spoofed_in_the_query_with_brackets_or_in_another_case_makes_a_write if {
	# ?_method[]=DELETE, ?_method%5B0%5D=DELETE (decoded before policy), ?_METHOD=DELETE.
	every key in ["_method[]", "_method[0]", "_METHOD", "_Method[a][]"] {
		spoofed := object.union(
			request(support, crm_api, "GET", "/api/customers/42"),
			{"parsed_query": {key: ["DELETE"]}},
		)
		d := policy.decision with input as spoofed
		d.reasons == [concat("", [
			"group support-agents has read-only access to crm-api; ",
			"GET /api/customers/42 with ?", key, "=DELETE needs write access",
		])]
	}
}

test_only_method_params_are_method_spoofing if {
	every key in ["method", "_methods", "x_method", "_method[", "_method]"] {
		other := object.union(
			request(support, crm_api, "GET", "/api/customers/42"),
			{"parsed_query": {key: ["DELETE"]}},
		)
		policy.decision.action == "allow" with input as other
	}
}

# Header and query values are the caller's: a reason quotes at most 100 characters of each.
test_override_values_are_clipped_in_the_reason if {
	value := concat("", [part | some _ in numbers.range(1, 30); part := "DELETE-"])
	base := request(support, crm_api, "GET", "/api/customers/42")
	headers := {"attributes": {"request": {"http": {"headers": {"x-http-method-override": value}}}}}
	d := policy.decision with input as object.union_n([base, headers, {"parsed_query": {"_method": [value]}}])
	clipped := concat("", [substring(value, 0, 100), "..."])
	d.reasons == [concat("", [
		"group support-agents has read-only access to crm-api; GET /api/customers/42 with ",
		"?_method=", clipped, ", x-http-method-override: ", clipped, " needs write access",
	])]
}

test_method_override_to_the_same_method_is_still_read if {
	base := request(support, crm_api, "GET", "/api/customers/42")
	d := policy.decision with input as object.union(base, {"attributes": {"request": {"http": {"headers": {
		"x-http-method": "get",
	}}}}})
	d.action == "allow"
}

test_reason_leaves_the_query_string_out if {
	d := policy.decision with input as request(support, crm_api, "DELETE", "/api/customers/42?token=s3cr3t")
	d.reasons == ["group support-agents has read-only access to crm-api; DELETE /api/customers/42 needs write access"]
}

test_sre_agents_get_needs_no_approval if {
	policy.decision == {
		"action": "allow",
		"reasons": ["allowed by grant sre-agents-operate: read access to crm-api"],
		"mask": crm_masks,
	} with input as request(sre, crm_api, "GET", "/api/customers/42")
}

test_sre_agents_post_to_prod_needs_an_sre_lead if {
	policy.decision == {
		"action": "approve",
		"reasons": [
			"allowed by grant sre-agents-operate: write access to crm-api",
			"approval required by rule prod-api-writes: Writes to production APIs need an SRE lead's approval.",
		],
		"mask": crm_masks,
		"approval": api_approval,
	} with input as request(sre, crm_api, "POST", "/api/customers/42/refunds")
}

test_sre_agents_post_once_approved_is_allowed if {
	policy.decision == {
		"action": "allow",
		"reasons": [
			"allowed by grant sre-agents-operate: write access to crm-api",
			"approved by approval apr-9 under rule prod-api-writes",
		],
		"mask": crm_masks,
	} with input as object.union(
		request(sre, crm_api, "POST", "/api/customers/42/refunds"),
		{"approval": {"id": "apr-9", "status": "approved"}},
	)
}

test_approved_status_without_id_is_not_an_approval if {
	d := policy.decision with input as object.union(
		request(sre, crm_api, "POST", "/api/customers/42/refunds"),
		{"approval": {"status": "approved"}},
	)
	d.action == "approve"
}

test_write_to_a_non_prod_api_needs_no_approval if {
	d := policy.decision with input as request(sre, object.union(crm_api, {"labels": {"env": "staging"}}), "POST", "/x")
	d.action == "allow"
	not d.approval
}

test_unknown_group_is_denied_with_403 if {
	policy.decision == {
		"action": "deny",
		"reasons": ["no grant gives [\"interns\"] access to crm-api"],
		"mask": [],
		"http_status": 403,
	} with input as request(identity("dave@example.com", ["interns"]), crm_api, "GET", "/api/customers")
}

test_missing_identity_is_denied_with_403 if {
	policy.decision == {
		"action": "deny",
		"reasons": ["request has no verified identity (identity.sub is missing)"],
		"mask": [],
		"http_status": 403,
	} with input as object.remove(request(support, crm_api, "GET", "/"), ["identity"])
}

test_missing_target_is_denied if {
	d := policy.decision with input as object.remove(request(support, crm_api, "GET", "/"), ["target"])
	d.reasons == ["request names no target (target.name is missing)"]
	d.http_status == 403
}

test_unknown_target_is_denied if {
	d := policy.decision with input as request(support, {"name": "billing-api", "kind": "http", "labels": {}}, "GET", "/")
	d.reasons == ["no grant gives [\"support-agents\"] access to billing-api"]
}

test_target_without_kind_is_denied if {
	d := policy.decision with input as request(support, {"name": "crm-api", "labels": {"env": "prod"}}, "GET", "/")
	d.reasons == ["target crm-api is of kind none, not http"]
}

test_request_without_method_is_denied if {
	base := request(sre, crm_api, "GET", "/api/customers")
	d := policy.decision with input as object.union(base, {"attributes": {"request": {"http": {"method": null}}}})
	d.action == "deny"
	d.reasons == ["HTTP request has no method (attributes.request.http.method)"]
}

test_request_without_path_is_described_by_its_method if {
	base := request(support, crm_api, "PUT", "/")
	d := policy.decision with input as object.union(base, {"attributes": {"request": {"http": {"path": null}}}})
	d.reasons == ["group support-agents has read-only access to crm-api; PUT needs write access"]
}

# A make that is undefined stands in for a lib that reaches no decision.
test_no_decision_is_a_deny if {
	policy.decision == {
		"action": "deny",
		"reasons": ["http policy reached no decision"],
		"mask": [],
		"http_status": 403,
	} with input as request(support, crm_api, "GET", "/")
		with data.gatehouse.lib.decision.make as no_decision
}

no_decision(kind, req) := kind if req.no_such_field
