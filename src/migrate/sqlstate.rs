//! SQLSTATE codes and PostgreSQL's condition names for them: the one table drover uses
//! whenever an error must be reported without its message.
//!
//! A server error's message and DETAIL may quote tenant data (`invalid input syntax for
//! type integer: "ann@example.com"`, `Failing row contains (…)`); its SQLSTATE never can.
//! What leaves drover (events, webhooks, analysis measurements, viewer-readable fields)
//! therefore carries `22P02 invalid_text_representation`, built here.
//!
//! The names are PostgreSQL's (Appendix A of its manual, `errcodes.txt`); the codes listed
//! are the ones a migration or a check plausibly raises. Any other code falls back to the
//! name of its class (the first two characters), and an unknown class to `unknown`.

/// Condition names of individual codes.
const CODES: &[(&str, &str)] = &[
    ("0A000", "feature_not_supported"),
    ("08000", "connection_exception"),
    ("08003", "connection_does_not_exist"),
    ("08006", "connection_failure"),
    ("08001", "sqlclient_unable_to_establish_sqlconnection"),
    ("08004", "sqlserver_rejected_establishment_of_sqlconnection"),
    ("08P01", "protocol_violation"),
    ("21000", "cardinality_violation"),
    ("22000", "data_exception"),
    ("22001", "string_data_right_truncation"),
    ("22003", "numeric_value_out_of_range"),
    ("22004", "null_value_not_allowed"),
    ("22007", "invalid_datetime_format"),
    ("22008", "datetime_field_overflow"),
    ("22012", "division_by_zero"),
    ("22021", "character_not_in_repertoire"),
    ("22023", "invalid_parameter_value"),
    ("22025", "invalid_escape_sequence"),
    ("2201B", "invalid_regular_expression"),
    ("22P02", "invalid_text_representation"),
    ("22P03", "invalid_binary_representation"),
    ("22P04", "bad_copy_file_format"),
    ("22P05", "untranslatable_character"),
    ("23000", "integrity_constraint_violation"),
    ("23001", "restrict_violation"),
    ("23502", "not_null_violation"),
    ("23503", "foreign_key_violation"),
    ("23505", "unique_violation"),
    ("23514", "check_violation"),
    ("23P01", "exclusion_violation"),
    ("25001", "active_sql_transaction"),
    ("25006", "read_only_sql_transaction"),
    ("25P01", "no_active_sql_transaction"),
    ("25P02", "in_failed_sql_transaction"),
    ("28000", "invalid_authorization_specification"),
    ("28P01", "invalid_password"),
    ("2BP01", "dependent_objects_still_exist"),
    ("3D000", "invalid_catalog_name"),
    ("3F000", "invalid_schema_name"),
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("42501", "insufficient_privilege"),
    ("42601", "syntax_error"),
    ("42602", "invalid_name"),
    ("42611", "invalid_column_definition"),
    ("42622", "name_too_long"),
    ("42701", "duplicate_column"),
    ("42702", "ambiguous_column"),
    ("42703", "undefined_column"),
    ("42704", "undefined_object"),
    ("42710", "duplicate_object"),
    ("42723", "duplicate_function"),
    ("42725", "ambiguous_function"),
    ("42803", "grouping_error"),
    ("42804", "datatype_mismatch"),
    ("42809", "wrong_object_type"),
    ("42830", "invalid_foreign_key"),
    ("42846", "cannot_coerce"),
    ("42883", "undefined_function"),
    ("42939", "reserved_name"),
    ("42P01", "undefined_table"),
    ("42P06", "duplicate_schema"),
    ("42P07", "duplicate_table"),
    ("42P10", "invalid_column_reference"),
    ("42P16", "invalid_table_definition"),
    ("42P17", "invalid_object_definition"),
    ("53000", "insufficient_resources"),
    ("53100", "disk_full"),
    ("53200", "out_of_memory"),
    ("53300", "too_many_connections"),
    ("54000", "program_limit_exceeded"),
    ("54001", "statement_too_complex"),
    ("55000", "object_not_in_prerequisite_state"),
    ("55006", "object_in_use"),
    ("55P03", "lock_not_available"),
    ("57014", "query_canceled"),
    ("57P01", "admin_shutdown"),
    ("57P02", "crash_shutdown"),
    ("57P03", "cannot_connect_now"),
    ("57P04", "database_dropped"),
    ("58030", "io_error"),
    ("P0001", "raise_exception"),
    ("P0002", "no_data_found"),
    ("P0003", "too_many_rows"),
    ("P0004", "assert_failure"),
    ("XX000", "internal_error"),
    ("XX001", "data_corrupted"),
];

/// Condition names of whole classes (the code's first two characters).
const CLASSES: &[(&str, &str)] = &[
    ("01", "warning"),
    ("02", "no_data"),
    ("03", "sql_statement_not_yet_complete"),
    ("08", "connection_exception"),
    ("09", "triggered_action_exception"),
    ("0A", "feature_not_supported"),
    ("0B", "invalid_transaction_initiation"),
    ("0F", "locator_exception"),
    ("0L", "invalid_grantor"),
    ("0P", "invalid_role_specification"),
    ("0Z", "diagnostics_exception"),
    ("20", "case_not_found"),
    ("21", "cardinality_violation"),
    ("22", "data_exception"),
    ("23", "integrity_constraint_violation"),
    ("24", "invalid_cursor_state"),
    ("25", "invalid_transaction_state"),
    ("26", "invalid_sql_statement_name"),
    ("27", "triggered_data_change_violation"),
    ("28", "invalid_authorization_specification"),
    ("2B", "dependent_privilege_descriptors_still_exist"),
    ("2D", "invalid_transaction_termination"),
    ("2F", "sql_routine_exception"),
    ("34", "invalid_cursor_name"),
    ("38", "external_routine_exception"),
    ("39", "external_routine_invocation_exception"),
    ("3B", "savepoint_exception"),
    ("3D", "invalid_catalog_name"),
    ("3F", "invalid_schema_name"),
    ("40", "transaction_rollback"),
    ("42", "syntax_error_or_access_rule_violation"),
    ("44", "with_check_option_violation"),
    ("53", "insufficient_resources"),
    ("54", "program_limit_exceeded"),
    ("55", "object_not_in_prerequisite_state"),
    ("57", "operator_intervention"),
    ("58", "system_error"),
    ("72", "snapshot_too_old"),
    ("F0", "config_file_error"),
    ("HV", "fdw_error"),
    ("P0", "plpgsql_error"),
    ("XX", "internal_error"),
];

/// PostgreSQL's condition name for `code` (or for its class).
pub fn condition_name(code: &str) -> &'static str {
    if let Some((_, name)) = CODES.iter().find(|(c, _)| *c == code) {
        return name;
    }
    let class = code.get(..2).unwrap_or_default();
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map_or("unknown", |(_, name)| name)
}

/// `22P02 invalid_text_representation`: what may be said about an error outside drover.
pub fn describe(code: &str) -> String {
    format!("{code} {}", condition_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_names_and_unknown_codes_their_class() {
        assert_eq!(describe("22P02"), "22P02 invalid_text_representation");
        assert_eq!(condition_name("23514"), "check_violation");
        assert_eq!(condition_name("23999"), "integrity_constraint_violation");
        assert_eq!(condition_name("ZZ123"), "unknown");
        assert_eq!(condition_name(""), "unknown");
    }

    #[test]
    fn every_code_is_listed_once_and_in_a_known_class() {
        for (i, (code, _)) in CODES.iter().enumerate() {
            assert_eq!(code.len(), 5, "{code}");
            assert!(!CODES[..i].iter().any(|(c, _)| c == code), "{code} twice");
            assert!(
                CLASSES.iter().any(|(c, _)| code.starts_with(c)),
                "{code} has no class"
            );
        }
    }
}
