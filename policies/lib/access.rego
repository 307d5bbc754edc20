# METADATA
# title: Gatehouse access
# description: |
#   Who is asking and which grants in data.access.grants apply to them.
#   A grant applies when it names the request's target and one of the
#   caller's groups. Grant semantics (data/access/data.yaml):
#     read  - permits read access only
#     write - permits read access, plus write access; for ssh, only the
#             request types listed in ssh_requests (default: exec)
#   Performance: the bundle runs as WASM, with nothing cached between
#   decisions and functions never memoized. Facts several places need are
#   rules, computed once per decision; helpers take what they need as
#   arguments instead of looking rules up again inside loops.
package gatehouse.lib.access

import data.gatehouse.lib.text

# METADATA
# description: True when the request carries a verified identity with a subject.
# scope: document
default identified := false

identified if {
	sub := input.identity.sub
	is_string(sub)
	sub != ""
}

# METADATA
# description: The caller's subject, or null without a verified identity.
# scope: document
default subject := null

subject := input.identity.sub if identified

# METADATA
# description: |
#   The caller's groups, as a list of strings. Anything that is not a string
#   is ignored, so a malformed claim can only ever reduce access. A list
#   rather than a set: for the few groups a caller has, a list is cheaper to
#   build and to search in WASM than a set is to hash.
caller_groups := [group |
	some group in input.identity.groups
	is_string(group)
]

# METADATA
# description: The target's name, or null when the request names none.
# scope: document
default target_name := null

target_name := name if {
	name := input.target.name
	is_string(name)
}

# METADATA
# description: The target's kind, or null when the request gives none.
# scope: document
default target_kind := null

target_kind := kind if {
	kind := input.target.kind
	is_string(kind)
}

# METADATA
# description: The target's labels, or {} when the request gives none.
# scope: document
default target_labels := {}

target_labels := labels if {
	labels := input.target.labels
	is_object(labels)
}

# METADATA
# description: |
#   Grants that name the target and at least one of the caller's groups, in
#   the order data.access.grants lists them.
# scope: document
default grants := []

grants := applicable(data.access.grants, target_name, caller_groups)

# The target and groups are arguments, looked up once rather than once per
# grant: in WASM every reference to a rule is a lookup of its own.
applicable(all_grants, target, groups) := [grant |
	some grant in all_grants
	target in grant.targets
	names_any(grant.groups, groups)
]

names_any(names, groups) if {
	some name in names
	name in groups
}

# METADATA
# description: True when a write grant applies to the caller and target.
has_write_grant if {
	some grant in grants
	grant.access == "write"
}

# METADATA
# description: |
#   The applicable grants that permit req (see lib.decision.make for the
#   shape of req).
permitting(req) := [grant | some grant in grants; permits(grant, req)]

# METADATA
# description: Whether grant permits the request req.
# scope: document
permits(grant, req) if {
	req.access == "read"
	grant.access == "read"
}

permits(grant, req) if {
	req.access == "read"
	grant.access == "write"
}

permits(grant, req) if {
	req.access == "write"
	grant.access == "write"
	request_type_listed(grant, req)
}

# Only ssh requests carry a request type; a write grant lists the ones it
# permits in ssh_requests.
request_type_listed(_, req) if not req.ssh_request

request_type_listed(grant, req) if req.ssh_request in object.get(grant, "ssh_requests", ["exec"])

# METADATA
# description: |
#   Why no applicable grant permits req, as a set holding one reason. Only
#   asked when permitting(req) is empty: these strings are built for denials
#   only. write_reason says why req needs write access.
refusals(req, write_reason) := {no_grant_reason} if {
	count(grants) == 0
} else := {read_only_reason(write_reason)} if {
	not has_write_grant
} else := {unlisted_reason(req)}

no_grant_reason := concat("", [
	"no grant gives ", text.clip(text.quoted_list({g | some g in caller_groups}), 200), " access to ", target_name,
]) if {
	count(caller_groups) > 0
} else := concat("", ["identity ", subject, " is in no group, so no grant gives it access to ", target_name])

# Only read grants apply, and the request needs write access.
read_only_reason(write_reason) := concat("", [
	text.groups_phrase(granted_groups), " read-only access to ", target_name,
	"; ", write_reason,
])

# The caller's groups that an applicable grant names.
granted_groups contains group if {
	some grant in grants
	some group in grant.groups
	group in caller_groups
}

# Write grants apply but none permits this ssh request type.
unlisted_reason(req) := concat("", [
	text.plural(names, "grant ", "grants "), concat(", ", names),
	text.plural(names, " does not allow ssh ", " do not allow ssh "),
	req.ssh_request, " requests on ", target_name,
]) if {
	is_string(req.ssh_request)
	names := sort([object.get(grant, "name", "(unnamed)") | some grant in grants; grant.access == "write"])
} else := concat("", ["no grant permits ", text.quote(req.access), " access to ", target_name])
