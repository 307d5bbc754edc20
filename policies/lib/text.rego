# METADATA
# title: Gatehouse text helpers
# description: Small helpers to build human-readable reasons.
package gatehouse.lib.text

# METADATA
# description: |
#   "group a has" or "groups a, b have", for a set or array of group names.
# scope: document
groups_phrase(groups) := concat("", ["group ", only, " has"]) if {
	count(groups) == 1
	some only in groups
}

groups_phrase(groups) := concat("", ["groups ", concat(", ", sort(groups)), " have"]) if count(groups) > 1

# METADATA
# description: one when the collection has exactly one element, else many.
# scope: document
plural(coll, one, _) := one if count(coll) == 1

plural(coll, _, many) := many if count(coll) != 1

# METADATA
# description: |
#   s in double quotes. Reasons avoid json.marshal for caller-supplied text:
#   Go escapes <, > and & in it and the WASM runtime does not, so the two
#   evaluators would disagree on the reason.
quote(s) := concat("", ["\"", s, "\""])

# METADATA
# description: A sorted list of strings written like a JSON array, e.g. ["a","b"].
quoted_list(names) := concat("", ["[", concat(",", [quote(name) | some name in sort(names)]), "]"])

# METADATA
# description: |
#   s cut to at most n characters, marked with "..." when cut: reasons carry
#   caller-supplied text (commands, paths, groups) into every audit event.
clip(s, n) := concat("", [substring(s, 0, n), "..."]) if count(s) > n

else := s
