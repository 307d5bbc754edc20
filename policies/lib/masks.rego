# METADATA
# title: Gatehouse masks
# description: |
#   What to mask for the caller: the target's entries in data.access.masks,
#   minus those whose exempt_groups include one of the caller's groups.
#   Entries are returned without exempt_groups, and without detectors when
#   they list none.
package gatehouse.lib.masks

import data.gatehouse.lib.access

# The keys of a mask entry that reach the engine.
entry_keys := ["column", "field", "strategy", "detectors"]

entry_keys_without_detectors := ["column", "field", "strategy"]

# METADATA
# description: The request target's mask entries, as written in data.access.masks.
# scope: document
default for_target := []

for_target := data.access.masks[access.target_name]

# METADATA
# description: The entries of `masks` that apply to a caller in `groups` (a set).
applicable(masks, groups) := [entry(mask) |
	some mask in masks
	not exempt(mask, groups)
]

exempt(mask, groups) if {
	some group in mask.exempt_groups
	group in groups
}

entry(mask) := object.filter(mask, entry_keys) if {
	count(object.get(mask, "detectors", [])) > 0
} else := object.filter(mask, entry_keys_without_detectors)
