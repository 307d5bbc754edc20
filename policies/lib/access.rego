# METADATA
# title: Gatehouse access
# description: |
#   Who is asking and which grants in data.access.grants apply to them.
#   A grant applies when it names the request's target and one of the
#   caller's groups. Grant semantics (data/access/data.yaml):
#     read  - permits read access only
#     write - permits read access, plus write access; for ssh, only the
#             request types listed in ssh_requests (default: exec)
package gatehouse.lib.access

import data.gatehouse.lib.text

# METADATA
# description: True when the request carries a verified identity with a subject.
# scope: document
default identified := false

identified if {
	is_string(input.identity.sub)
	input.identity.sub != ""
}

# METADATA
# description: The caller's subject, or null without a verified identity.
# scope: document
default subject := null

subject := input.identity.sub if identified

# METADATA
# description: |
#   The caller's groups, as a set of strings. Anything that is not a string
#   is ignored, so a malformed claim can only ever reduce access.
caller_groups contains group if {
	some group in input.identity.groups
	is_string(group)
}

# METADATA
# description: The target's name, or null when the request names none.
# scope: document
default target_name := null

target_name := input.target.name if is_string(input.target.name)

# METADATA
# description: The target's kind, or null when the request gives none.
# scope: document
default target_kind := null

target_kind := input.target.kind if is_string(input.target.kind)

# METADATA
# description: The target's labels, or {} when the request gives none.
# scope: document
default target_labels := {}

target_labels := input.target.labels if is_object(input.target.labels)

# METADATA
# description: |
#   Grants that name the target and at least one of the caller's groups, in
#   the order data.access.grants lists them.
grants := [grant |
	some grant in data.access.grants
	target_name in grant.targets
	names_any(grant.groups, caller_groups)
]

names_any(names, groups) if {
	some name in names
	name in groups
}

# METADATA
# description: True when a write grant applies to the caller and target.
has_write_grant if write_grant_in(grants)

# METADATA
# description: |
#   The grants that permit req (see lib.decision.make for the shape of req).
permitting(grants, req) := [grant | some grant in grants; permits(grant, req)]

# METADATA
# description: Whether grant permits the request req.
# scope: document
permits(grant, req) if {
	req.access == "read"
	grant.access in {"read", "write"}
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
#   Why no grant applicable to the caller permits req, as a set of reasons;
#   empty when the request is permitted. ctx is lib.decision.context.
denials(ctx, req) := grant_denials(ctx, req, permitting(ctx.grants, req))

grant_denials(ctx, req, permitted) := set() if {
	count(permitted) > 0
} else := {no_grant_reason(ctx)} if {
	count(ctx.grants) == 0
} else := {read_only_reason(ctx, req)} if {
	not write_grant_in(ctx.grants)
} else := {unlisted_reason(ctx, req)}

write_grant_in(grants) if {
	some grant in grants
	grant.access == "write"
}

no_grant_reason(ctx) := concat("", [
	"no grant gives ", text.clip(text.quoted_list(ctx.groups), 200), " access to ", ctx.target,
]) if {
	count(ctx.groups) > 0
} else := concat("", ["identity ", ctx.subject, " is in no group, so no grant gives it access to ", ctx.target])

# Only read grants apply, and the request needs write access.
read_only_reason(ctx, req) := concat("", [
	text.groups_phrase(granted_groups(ctx)), " read-only access to ", ctx.target,
	"; ", req.write_reason,
])

# The caller's groups that an applicable grant names.
granted_groups(ctx) := {group |
	some grant in ctx.grants
	some group in grant.groups
	group in ctx.groups
}

# Write grants apply but none permits this ssh request type.
unlisted_reason(ctx, req) := concat("", [
	text.plural(names, "grant ", "grants "), concat(", ", names),
	text.plural(names, " does not allow ssh ", " do not allow ssh "),
	req.ssh_request, " requests on ", ctx.target,
]) if {
	is_string(req.ssh_request)
	names := sort([object.get(grant, "name", "(unnamed)") | some grant in ctx.grants; grant.access == "write"])
} else := concat("", ["no grant permits ", text.quote(req.access), " access to ", ctx.target])
