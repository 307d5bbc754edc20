# METADATA
# title: Gatehouse decisions
# description: |
#   Assembles the decision document every protocol package returns:
#     {"action": "allow"|"deny"|"approve", "reasons": [...], "mask": [...],
#      "approval": {...}}   (approval only when action is "approve")
#   Protocol packages describe the request and call make(kind, req).
package gatehouse.lib.decision

import data.gatehouse.lib.access
import data.gatehouse.lib.approvals
import data.gatehouse.lib.masks
import data.gatehouse.lib.text

# METADATA
# description: |
#   The protocol-free facts a decision is made from, gathered once per
#   evaluation so that the functions below depend on their arguments only.
#   Masks and approval rules are only references here: they are worked out
#   once the request is known not to be denied.
context := {
	"identified": access.identified,
	"subject": access.subject,
	"target": access.target_name,
	"kind": access.target_kind,
	"labels": access.target_labels,
	"groups": access.caller_groups,
	"grants": access.grants,
	"masks": masks.for_target,
	"approval_rules": approvals.rules,
	"approved_id": approvals.granted_id,
}

# METADATA
# description: |
#   The decision for a request to a target of protocol `kind`
#   ("postgres" | "http" | "ssh"). req describes the request:
#     access       - "read" | "write": what the request needs
#     write_reason - why it needs write, e.g. "DELETE writes public.orders"
#     denials      - set of protocol-specific reasons to deny
#     ssh_request  - ssh only: the request type, checked against a write
#                    grant's ssh_requests
#   A request is denied unless it has an identity, a target of this kind,
#   a grant that permits it, and no protocol denial. An allowed request that
#   matches an approval rule is held for approval ("approve") unless it is
#   replayed under an approved approval.
make(kind, req) := assemble(kind, req, context)

# METADATA
# description: make, with the facts passed in (ctx has the shape of context).
assemble(kind, req, ctx) := deny(reasons) if {
	reasons := denials(kind, req, ctx)
	count(reasons) > 0
} else := outcome(req, ctx)

# METADATA
# description: A deny decision with the given reasons.
deny(reasons) := {"action": "deny", "reasons": sort(reasons), "mask": []}

denials(kind, req, ctx) := {"request has no verified identity (identity.sub is missing)"} if {
	not ctx.identified
} else := {"request names no target (target.name is missing)"} if {
	ctx.target == null
} else := {target_kind_reason(kind, ctx)} if {
	ctx.kind != kind
} else := access.denials(ctx, req) | req.denials

target_kind_reason(kind, ctx) := concat("", [
	"target ", ctx.target, " is of kind ", kind_phrase(ctx.kind), ", not ", kind,
])

kind_phrase(kind) := text.quote(kind) if is_string(kind)

else := "none"

outcome(req, ctx) := finish(
	req, ctx,
	approvals.strictest(ctx.approval_rules, req.access, ctx.kind, ctx.labels, ctx.groups),
)

finish(req, ctx, rule) := {
	"action": "allow",
	"reasons": grant_reasons(req, ctx),
	"mask": masks.applicable(ctx.masks, ctx.groups),
} if {
	rule == null
} else := {
	"action": "approve",
	"reasons": array.concat(grant_reasons(req, ctx), [approval_reason(rule)]),
	"mask": masks.applicable(ctx.masks, ctx.groups),
	"approval": approvals.approval(rule),
} if {
	ctx.approved_id == null
} else := {
	"action": "allow",
	"reasons": array.concat(grant_reasons(req, ctx), [concat("", [
		"approved by approval ", ctx.approved_id, " under rule ", name_of(rule),
	])]),
	"mask": masks.applicable(ctx.masks, ctx.groups),
}

grant_reasons(req, ctx) := sort([reason |
	some grant in access.permitting(ctx.grants, req)
	reason := concat("", [
		"allowed by grant ", name_of(grant), ": ", req.access,
		" access to ", ctx.target,
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
