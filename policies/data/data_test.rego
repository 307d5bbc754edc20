# Checks that policies/data/access/data.yaml is well formed, so that a typo in
# the data fails CI instead of silently granting, masking or approving less.
package gatehouse.access_data_test

grant_keys := {"name", "groups", "targets", "access", "ssh_requests"}

mask_keys := {"column", "field", "strategy", "detectors", "exempt_groups"}

approval_keys := {"name", "description", "match", "approvers", "min", "ttl_seconds", "mode"}

match_keys := {"labels", "kinds", "access", "requester_groups"}

string_list(value) if {
	is_array(value)
	every item in value {
		is_string(item)
		item != ""
	}
}

non_empty_strings(value) if {
	string_list(value)
	count(value) > 0
}

granted_targets contains target if {
	some grant in data.access.grants
	some target in grant.targets
}

test_grants_are_well_formed if {
	count(data.access.grants) > 0
	every grant in data.access.grants {
		object.keys(grant) - grant_keys == set()
		is_string(grant.name)
		non_empty_strings(grant.groups)
		non_empty_strings(grant.targets)
		grant.access in {"read", "write"}
		string_list(object.get(grant, "ssh_requests", []))
	}
}

test_grant_names_are_unique if {
	names := [grant.name | some grant in data.access.grants]
	count(names) == count({name | some name in names})
}

test_ssh_requests_are_only_on_write_grants_and_never_forward if {
	every grant in data.access.grants {
		ssh_requests_allowed(grant)
		not "forward" in object.get(grant, "ssh_requests", [])
	}
}

ssh_requests_allowed(grant) if grant.access == "write"

ssh_requests_allowed(grant) if object.get(grant, "ssh_requests", []) == []

test_masks_are_well_formed if {
	every target, entries in data.access.masks {
		target in granted_targets
		every entry in entries {
			object.keys(entry) - mask_keys == set()
			count(object.keys(entry) & {"column", "field"}) == 1
			entry.strategy in {"redact", "partial", "hash", "null"}
			non_empty_strings(object.get(entry, "detectors", ["none"]))
			string_list(object.get(entry, "exempt_groups", []))
		}
	}
}

test_mask_columns_are_schema_table_column if {
	every _, entries in data.access.masks {
		every entry in entries {
			count(split(object.get(entry, "column", "s.t.c"), ".")) == 3
		}
	}
}

test_approvals_are_well_formed if {
	every rule in data.access.approvals {
		object.keys(rule) - approval_keys == set()
		is_string(rule.name)
		is_string(rule.description)
		object.keys(object.get(rule, "match", {})) - match_keys == set()
		non_empty_strings(rule.approvers)
		is_number(rule.min)
		rule.min >= 1
		rule.min == round(rule.min)
		rule.ttl_seconds > 0
		rule.mode in {"hold", "ticket"}
	}
}

test_approval_matches_are_well_formed if {
	every rule in data.access.approvals {
		every key, value in object.get(rule.match, "labels", {}) {
			is_string(key)
			is_string(value)
		}
		every kind in object.get(rule.match, "kinds", []) {
			kind in {"postgres", "http", "ssh"}
		}
		object.get(rule.match, "access", "read") in {"read", "write"}
		string_list(object.get(rule.match, "requester_groups", []))
	}
}

test_approval_names_are_unique if {
	names := [rule.name | some rule in data.access.approvals]
	count(names) == count({name | some name in names})
}

test_read_commands_are_well_formed if {
	every target, patterns in data.access.read_commands {
		target in granted_targets
		non_empty_strings(patterns)
	}
}

test_readonly_denied_functions_are_bare_lowercase_names if {
	every name in data.access.postgres.readonly_denied_functions {
		is_string(name)
		name == lower(name)
		not contains(name, ".")
	}
}

test_state_changing_functions_are_bare_lowercase_names_a_reader_may_not_call if {
	every name in data.access.postgres.state_changing_functions {
		is_string(name)
		name == lower(name)
		not contains(name, ".")
		name in data.access.postgres.readonly_denied_functions
	}
}

test_readonly_denied_views_are_bare_lowercase_names if {
	views := data.access.postgres.readonly_denied_views
	count(views) > 0
	every name in views {
		is_string(name)
		name == lower(name)
		not contains(name, ".")
	}
}

test_postgres_name_lists_hold_no_duplicates if {
	every list in ["readonly_denied_functions", "readonly_denied_views", "state_changing_functions", "readonly_settings"] {
		names := data.access.postgres[list]
		count(names) == count({name | some name in names})
	}
}
