# METADATA
# title: Gatehouse decisions
# description: |
#   Assembles the decision document every protocol package returns:
#     {"action": "allow"|"deny"|"approve", "reasons": [...], "mask": [...],
#      "approval": {...}}   (approval only when action is "approve")
#   Protocol packages describe the request and call make(kind, req).
#   Performance: each decision runs in WASM with nothing cached between
#   decisions, so the work is ordered to stop as early as it can and reasons,
#   masks and approvals are only built on the path that returns them.
package gatehouse.lib.decision

import data.gatehouse.lib.access
import data.gatehouse.lib.approvals
import data.gatehouse.lib.masks
import data.gatehouse.lib.text

# METADATA
# description: |
#   The decision for a request to a target of protocol `kind`
#   ("postgres" | "http" | "ssh"). req describes the request:
#     access       - "read" | "write": what the request needs
#     denials      - set of protocol-specific reasons to deny
#     ssh_request  - ssh only: the request type, checked against a write
#                    grant's ssh_requests
#   and the protocol package (data.gatehouse[kind]) defines write_reason: why
#   the request needs write access, e.g. "DELETE writes public.orders". It
#   is only looked up to explain a denial, so allowed requests never build it.
#   A request is denied unless it has an identity, a target of this kind,
#   a grant that permits it, and no protocol denial. An allowed request that
#   matches an approval rule is held for approval ("approve") unless it is
#   replayed under an approved approval.
make(kind, req) := deny({"request has no verified identity (identity.sub is missing)"}) if {
	not access.identified
} else := deny({"request names no target (target.name is missing)"}) if {
	access.target_name == null
} else := deny({target_kind_reason(kind)}) if {
	not input.target.kind == kind
} else := decide(kind, req, access.permitting(req))

# make, for a request with an identity and a target of the right kind, with
# the grants that permit it worked out once.
decide(kind, req, permitted) := deny(reasons) if {
	count(permitted) == 0
	reasons := access.refusals(req, write_reason(kind)) | req.denials
} else := deny(req.denials) if {
	count(req.denials) > 0
} else := allow(req, permitted, approvals.strictest(
	approvals.rules, req.access, kind,
	access.target_labels, access.caller_groups,
)) if {
	# Never allow without a permitting grant, even if a reason above could
	# not be built: the decision is then undefined, and the default denies.
	count(permitted) > 0
}

# METADATA
# description: A deny decision with the given reasons.
deny(reasons) := {"action": "deny", "reasons": sort(reasons), "mask": []}

target_kind_reason(kind) := concat("", [
	"target ", access.target_name, " is of kind ", kind_phrase(access.target_kind), ", not ", kind,
])

kind_phrase(kind) := text.quote(kind) if is_string(kind)

else := "none"

# The protocol's write_reason; a protocol that lacks one still gets a reason.
write_reason(kind) := reason if {
	reason := data.gatehouse[kind].write_reason
} else := "the request needs write access"

# The approval id is only looked up when an approval rule matches.
allow(req, permitted, rule) := grant(req, permitted, rule, masks.for_caller, null) if {
	rule == null
} else := grant(req, permitted, rule, masks.for_caller, approvals.granted_id)

# An allowed request: rule is the approval rule it matches, or null; mask is
# what to mask for the caller; approved_id is lib.approvals.granted_id.
grant(req, permitted, rule, mask, approved_id) := {
	"action": "allow",
	"reasons": grant_reasons(req, permitted),
	"mask": mask,
} if {
	rule == null
} else := {
	"action": "approve",
	"reasons": array.concat(grant_reasons(req, permitted), [approval_reason(rule)]),
	"mask": mask,
	"approval": approvals.approval(rule),
} if {
	approved_id == null
} else := {
	"action": "allow",
	"reasons": array.concat(grant_reasons(req, permitted), [concat("", [
		"approved by approval ", approved_id, " under rule ", name_of(rule),
	])]),
	"mask": mask,
}

grant_reasons(req, permitted) := sort([reason |
	some grant in permitted
	reason := concat("", [
		"allowed by grant ", name_of(grant), ": ", req.access,
		" access to ", access.target_name,
	])
])

approval_reason(rule) := concat("", ["approval required by rule ", name_of(rule), ": ", rule.description]) if {
	is_string(rule.description)
	rule.description != ""
} else := concat("", ["approval required by rule ", name_of(rule)])

# Reasons must never come out empty or undefined, even when the data lacks a
# name (the data tests in policies/data reject that in CI).
name_of(item) := item.name if is_string(item.name)

else := "(unnamed)"
