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
#   `groups` (a list or set); null when none matches.
strictest(rules, needed, kind, labels, groups) := strictest_of(rules, [i |
	some i, rule in rules
	matches(rule, needed, kind, labels, groups)
])

# The strictest of the rules at indices `matching`. Usually one rule or none
# matches, and then there is nothing to sort.
strictest_of(rules, matching) := null if {
	count(matching) == 0
} else := rules[matching[0]] if {
	count(matching) == 1
} else := rules[sort([[0 - object.get(rules[i], "min", 1), object.get(rules[i], "ttl_seconds", 900), i] |
	some i in matching
])[0][2]]

# METADATA
# description: |
#   The decision's approval block for a rule. Keys a rule leaves out default
#   to one approver and 900 seconds. A rule without a mode leaves it out, so
#   the target's config chooses hold or ticket (and the gateway holds when
#   neither says).
approval(rule) := object.union(approval_base(rule), {"mode": rule.mode}) if {
	is_string(rule.mode)
} else := approval_base(rule)

approval_base(rule) := {
	"groups": object.get(rule, "approvers", []),
	"min": object.get(rule, "min", 1),
	"ttl_seconds": object.get(rule, "ttl_seconds", 900),
}

# METADATA
# description: |
#   Whether the match block of rule holds for the request; a rule without
#   one matches every request. The checks that rule out most rules come
#   first: most requests are reads, and most rules are for one kind.
# scope: document
matches(rule, _, _, _, _) if not rule.match

matches(rule, needed, kind, labels, groups) if {
	m := rule.match
	access_match(m, needed)
	kinds_match(m, kind)
	labels_match(m, labels)
	requester_match(m, groups)
}

access_match(m, _) if not m.access

access_match(m, needed) if m.access == needed

kinds_match(m, _) if not m.kinds

kinds_match(m, kind) if kind in m.kinds

labels_match(m, _) if not m.labels

labels_match(m, labels) if {
	every key, value in m.labels {
		labels[key] == value
	}
}

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
