# METADATA
# title: Gatehouse approvals
# description: |
#   Which rule in data.access.approvals holds a request for a human. A rule
#   matches when every key given in its `match` holds:
#     labels           - all these labels are on input.target.labels
#     kinds            - input.target.kind is one of these
#     access           - the access the request needs ("read" | "write")
#     requester_groups - the caller is in one of these groups
#   The strictest matching rule wins: highest min, then shortest ttl_seconds,
#   then the one listed first.
package gatehouse.lib.approvals

# METADATA
# description: The approval rules (data.access.approvals).
# scope: document
default rules := []

rules := data.access.approvals

# METADATA
# description: |
#   The strictest of rules that matches a request needing `needed` access
#   ("read" | "write") to a target of `kind` with `labels`, from a caller in
#   `groups` (a set); null when none matches.
strictest(rules, needed, kind, labels, groups) := rules[sort(keys)[0][2]] if {
	keys := [[0 - object.get(rule, "min", 1), object.get(rule, "ttl_seconds", 900), i] |
		some i, rule in rules
		matches(object.get(rule, "match", {}), needed, kind, labels, groups)
	]
	count(keys) > 0
} else := null

# METADATA
# description: |
#   The decision's approval block for a rule. Keys a rule leaves out default
#   to one approver, 900 seconds and hold: never weaker than asking a human.
approval(rule) := {
	"groups": object.get(rule, "approvers", []),
	"min": object.get(rule, "min", 1),
	"ttl_seconds": object.get(rule, "ttl_seconds", 900),
	"mode": object.get(rule, "mode", "hold"),
}

# METADATA
# description: Whether the match block m of a rule holds for the request.
matches(m, needed, kind, labels, groups) if {
	labels_match(m, labels)
	kinds_match(m, kind)
	access_match(m, needed)
	requester_match(m, groups)
}

labels_match(m, labels) if {
	every key, value in object.get(m, "labels", {}) {
		labels[key] == value
	}
}

kinds_match(m, _) if not m.kinds

kinds_match(m, kind) if kind in m.kinds

access_match(m, _) if not m.access

access_match(m, needed) if m.access == needed

requester_match(m, _) if not m.requester_groups

requester_match(m, groups) if {
	some group in m.requester_groups
	group in groups
}

# METADATA
# description: |
#   The id of the approval the gateway replays this request under, when a
#   human has approved it; null otherwise.
# scope: document
default granted_id := null

granted_id := input.approval.id if {
	input.approval.status == "approved"
	is_string(input.approval.id)
	input.approval.id != ""
}
